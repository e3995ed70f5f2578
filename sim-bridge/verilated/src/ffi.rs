//! The one FFI helper behind both Verilated tops.
//!
//! Both C shims (`csrc/shim.cpp` for `dla_sim_top`, `csrc/uart_shim.cpp` for
//! `dla_uart_top`) export the same shape of C ABI: a factory, and a handle
//! that queues input bytes, clocks the model, hands out output bytes and says
//! when it is quiescent. [`Model`] owns one handle through a table of those
//! functions ([`Ops`]), so the unsafe code and its safety arguments exist once.

use std::os::raw::c_void;
use std::ptr::NonNull;

mod sys {
    use std::os::raw::c_void;
    extern "C" {
        pub fn dla_sizes(rows: *mut u32, cols: *mut u32, max: usize) -> usize;
        pub fn dla_new(rows: u32, cols: u32) -> *mut c_void;
        pub fn dla_new_ice40() -> *mut c_void;
        pub fn dla_new_ecp5() -> *mut c_void;
        pub fn dla_free(h: *mut c_void);
        pub fn dla_write(h: *mut c_void, bytes: *const u8, n: usize);
        pub fn dla_run(h: *mut c_void, want_out_bytes: usize, max_cycles: u64) -> u64;
        pub fn dla_idle(h: *mut c_void, cycles: u64);
        pub fn dla_pending(h: *mut c_void) -> usize;
        pub fn dla_read(h: *mut c_void, buf: *mut u8, n: usize) -> usize;
        pub fn dla_quiescent(h: *mut c_void) -> i32;
        pub fn dla_total_cycles(h: *mut c_void) -> u64;
        pub fn dla_trace_open(
            h: *mut c_void,
            path: *const std::os::raw::c_char,
            start: u64,
            end: u64,
        ) -> i32;

        pub fn dla_uart_sizes(rows: *mut u32, cols: *mut u32, max: usize) -> usize;
        pub fn dla_uart_new(rows: u32, cols: u32, cpb8: u32) -> *mut c_void;
        pub fn dla_uart_free(h: *mut c_void);
        pub fn dla_uart_write(h: *mut c_void, bytes: *const u8, n: usize);
        pub fn dla_uart_run(h: *mut c_void, max_cycles: u64) -> u64;
        pub fn dla_uart_idle(h: *mut c_void, cycles: u64);
        pub fn dla_uart_pending(h: *mut c_void) -> usize;
        pub fn dla_uart_read(h: *mut c_void, buf: *mut u8, n: usize) -> usize;
        pub fn dla_uart_quiescent(h: *mut c_void) -> i32;
        pub fn dla_uart_defect(h: *mut c_void, row: u8, col: u8, site: u8, sa0: u32, sa1: u32);
        pub fn dla_uart_total_cycles(h: *mut c_void) -> u64;
        pub fn dla_uart_framing_errors(h: *mut c_void) -> u64;
    }
}

/// The C functions of one kind of top.
pub(crate) struct Ops {
    sizes: unsafe extern "C" fn(*mut u32, *mut u32, usize) -> usize,
    free: unsafe extern "C" fn(*mut c_void),
    write: unsafe extern "C" fn(*mut c_void, *const u8, usize),
    /// Clock until `want` output bytes are buffered (the sim top; the UART
    /// shim ignores it and runs until idle) or the cycle budget is spent.
    run: unsafe fn(*mut c_void, usize, u64) -> u64,
    idle: unsafe extern "C" fn(*mut c_void, u64),
    pending: unsafe extern "C" fn(*mut c_void) -> usize,
    read: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> usize,
    quiescent: unsafe extern "C" fn(*mut c_void) -> i32,
    total_cycles: unsafe extern "C" fn(*mut c_void) -> u64,
}

unsafe fn sim_run(h: *mut c_void, want: usize, max_cycles: u64) -> u64 {
    // SAFETY: forwarded from Model::run, which holds a valid handle.
    unsafe { sys::dla_run(h, want, max_cycles) }
}

unsafe fn uart_run(h: *mut c_void, _want: usize, max_cycles: u64) -> u64 {
    // SAFETY: forwarded from Model::run, which holds a valid handle.
    unsafe { sys::dla_uart_run(h, max_cycles) }
}

/// `dla_sim_top` (csrc/shim.cpp).
pub(crate) static SIM: Ops = Ops {
    sizes: sys::dla_sizes,
    free: sys::dla_free,
    write: sys::dla_write,
    run: sim_run,
    idle: sys::dla_idle,
    pending: sys::dla_pending,
    read: sys::dla_read,
    quiescent: sys::dla_quiescent,
    total_cycles: sys::dla_total_cycles,
};

/// `dla_uart_top` (csrc/uart_shim.cpp).
pub(crate) static UART: Ops = Ops {
    sizes: sys::dla_uart_sizes,
    free: sys::dla_uart_free,
    write: sys::dla_uart_write,
    run: uart_run,
    idle: sys::dla_uart_idle,
    pending: sys::dla_uart_pending,
    read: sys::dla_uart_read,
    quiescent: sys::dla_uart_quiescent,
    total_cycles: sys::dla_uart_total_cycles,
};

impl Ops {
    /// The array sizes (rows, cols) of this top compiled into the build.
    pub(crate) fn built_sizes(&'static self) -> Vec<(usize, usize)> {
        let mut rows = [0u32; 64];
        let mut cols = [0u32; 64];
        // SAFETY: both buffers hold 64 entries, the shim writes at most `max`.
        let n = unsafe { (self.sizes)(rows.as_mut_ptr(), cols.as_mut_ptr(), 64) }.min(64);
        (0..n).map(|i| (rows[i] as usize, cols[i] as usize)).collect()
    }
}

/// "4x4, 8x8" (or "none") for error messages.
pub(crate) fn sizes_text(sizes: &[(usize, usize)]) -> String {
    if sizes.is_empty() {
        return "none".into();
    }
    sizes.iter().map(|(r, c)| format!("{r}x{c}")).collect::<Vec<_>>().join(", ")
}

/// One Verilated model instance, owned exclusively.
pub(crate) struct Model {
    h: NonNull<c_void>,
    ops: &'static Ops,
}

// SAFETY: the model is owned exclusively by this value; the shims keep no
// thread-local state, so it may move between threads (it is not Sync).
unsafe impl Send for Model {}

impl Model {
    /// Open a sim-top model of this size (`None`: not built).
    pub(crate) fn sim(rows: u32, cols: u32) -> Option<Model> {
        // SAFETY: plain FFI call; NULL means "not built".
        let h = unsafe { sys::dla_new(rows, cols) };
        NonNull::new(h).map(|h| Model { h, ops: &SIM })
    }

    /// Open the iCE40 core configuration (always built).
    pub(crate) fn sim_ice40() -> Model {
        // SAFETY: plain FFI call.
        let h = unsafe { sys::dla_new_ice40() };
        Model { h: NonNull::new(h).expect("dla_new_ice40"), ops: &SIM }
    }

    /// Open the ECP5 core configuration (always built).
    pub(crate) fn sim_ecp5() -> Model {
        // SAFETY: plain FFI call.
        let h = unsafe { sys::dla_new_ecp5() };
        Model { h: NonNull::new(h).expect("dla_new_ecp5"), ops: &SIM }
    }

    /// Open a UART board model (`None`: not built; `cpb8`, the bit period in
    /// eighths of a cycle, is range-checked by the caller).
    pub(crate) fn uart(rows: u32, cols: u32, cpb8: u32) -> Option<Model> {
        // SAFETY: plain FFI call; NULL means "not built".
        let h = unsafe { sys::dla_uart_new(rows, cols, cpb8) };
        NonNull::new(h).map(|h| Model { h, ops: &UART })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        // SAFETY: valid handle; bytes readable for bytes.len().
        unsafe { (self.ops.write)(self.h.as_ptr(), bytes.as_ptr(), bytes.len()) }
    }

    pub(crate) fn run(&mut self, want: usize, max_cycles: u64) -> u64 {
        // SAFETY: valid handle owned by self.
        unsafe { (self.ops.run)(self.h.as_ptr(), want, max_cycles) }
    }

    pub(crate) fn idle(&mut self, cycles: u64) {
        // SAFETY: valid handle owned by self.
        unsafe { (self.ops.idle)(self.h.as_ptr(), cycles) }
    }

    pub(crate) fn pending(&self) -> usize {
        // SAFETY: valid handle owned by self.
        unsafe { (self.ops.pending)(self.h.as_ptr()) }
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: valid handle; buf is writable for buf.len() bytes.
        unsafe { (self.ops.read)(self.h.as_ptr(), buf.as_mut_ptr(), buf.len()) }
    }

    pub(crate) fn quiescent(&self) -> bool {
        // SAFETY: valid handle owned by self.
        unsafe { (self.ops.quiescent)(self.h.as_ptr()) != 0 }
    }

    pub(crate) fn total_cycles(&self) -> u64 {
        // SAFETY: valid handle owned by self.
        unsafe { (self.ops.total_cycles)(self.h.as_ptr()) }
    }

    /// Attach an FST writer to a sim top: cycles `start..end` (counted like
    /// [`Model::total_cycles`]) go to `path`. False if the file cannot be
    /// opened or a trace is already attached.
    pub(crate) fn sim_trace_open(&mut self, path: &std::ffi::CStr, start: u64, end: u64) -> bool {
        assert!(std::ptr::eq(self.ops, &SIM), "only the sim tops are traced");
        // SAFETY: valid sim handle owned by self; `path` is NUL-terminated and
        // only read during the call.
        unsafe { sys::dla_trace_open(self.h.as_ptr(), path.as_ptr(), start, end) == 0 }
    }

    /// Write a hidden defect through a UART top's defect port.
    pub(crate) fn uart_defect(&mut self, row: u8, col: u8, site: u8, sa0: u32, sa1: u32) {
        assert!(std::ptr::eq(self.ops, &UART), "only the UART top has a defect port");
        // SAFETY: valid UART handle owned by self.
        unsafe { sys::dla_uart_defect(self.h.as_ptr(), row, col, site, sa0, sa1) }
    }

    /// Bytes from a UART top's TX pin whose stop bit read 0.
    pub(crate) fn uart_framing_errors(&self) -> u64 {
        assert!(std::ptr::eq(self.ops, &UART), "only the UART top has a TX pin");
        // SAFETY: valid UART handle owned by self.
        unsafe { sys::dla_uart_framing_errors(self.h.as_ptr()) }
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: the handle came from this top's factory and is freed exactly once.
        unsafe { (self.ops.free)(self.h.as_ptr()) }
    }
}
