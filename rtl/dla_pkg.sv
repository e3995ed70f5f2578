// Constants and types shared by the DLA RTL (normative values:
// docs/protocol.md).
//
// Tool subset: Yosys 0.23 accepts neither `import dla_pkg::*;` nor a
// wildcard import in a module header, and Icarus 11 crashes on a variable
// declared with a package-scoped enum type (`dla_pkg::rx_state_e st_q;`).
// What all three tools (Verilator 5.006, Icarus 11, Yosys 0.23) accept:
// package-scoped names (`dla_pkg::OpInfo`) everywhere, and a module-local
// alias for each state type (`typedef dla_pkg::rx_state_e rx_state_e;`)
// declared before the state registers.
package dla_pkg;

  // ---------------------------------------------------------------------------
  // Frames (protocol.md section 1)
  // ---------------------------------------------------------------------------
  localparam logic [7:0] ReqSync = 8'hA5;   // first byte of a request
  localparam logic [7:0] RepSync = 8'h5A;   // first byte of a reply

  // Bytes after the sync byte: op/status u8, seq u16, len u32.
  localparam int HeaderBytes = 7;
  localparam int CrcBytes    = 2;
  // Payload bytes 0..FieldBytes-1 hold the fields of every request (the
  // longest is MATMUL's 12 bytes before its reserved u16).
  localparam int FieldBytes  = 12;

  // Request payload lengths (protocol.md section 2).
  localparam logic [31:0] LenWriteAddr   = 32'd4;    // WRITE_WEIGHTS: addr u32, then data
  localparam logic [31:0] LenPatchEntry  = 32'd4;    // PATCH_WEIGHTS: addr u24, value u8
  localparam logic [31:0] LenSetFault    = 32'd11;
  localparam logic [31:0] LenSetBypass   = 32'd3;
  localparam logic [31:0] LenSetSeu      = 32'd8;
  localparam logic [31:0] LenMatmulHead  = 32'd14;   // MATMUL: fields before a[m*k]
  // Reply payload lengths.
  localparam logic [31:0] RepLenInfo     = 32'd20;
  localparam logic [31:0] RepLenCounters = 32'd24;

  // INFO reply: proto and rtl version bytes.
  localparam logic [7:0] ProtoVersion = 8'h02;
  localparam logic [7:0] RtlVersion   = 8'h01;

  // ---------------------------------------------------------------------------
  // Opcodes and status codes
  // ---------------------------------------------------------------------------
  localparam logic [7:0] OpInfo     = 8'h01;
  localparam logic [7:0] OpReset    = 8'h02;
  localparam logic [7:0] OpWrite    = 8'h03;   // WRITE_WEIGHTS
  localparam logic [7:0] OpPatch    = 8'h04;   // PATCH_WEIGHTS
  localparam logic [7:0] OpFault    = 8'h05;   // SET_FAULT
  localparam logic [7:0] OpBypass   = 8'h06;   // SET_BYPASS
  localparam logic [7:0] OpClear    = 8'h07;   // CLEAR_FAULTS
  localparam logic [7:0] OpSeu      = 8'h08;   // SET_SEU
  localparam logic [7:0] OpMatmul   = 8'h09;
  localparam logic [7:0] OpCounters = 8'h0A;

  localparam logic [7:0] StsOk         = 8'd0;
  localparam logic [7:0] StsBadCrc     = 8'd1;
  localparam logic [7:0] StsBadOpcode  = 8'd2;
  localparam logic [7:0] StsBadLength  = 8'd3;
  localparam logic [7:0] StsOutOfRange = 8'd4;
  localparam logic [7:0] StsBusy       = 8'd5;   // the remote bridge's; never sent by the core

  // ---------------------------------------------------------------------------
  // Fault sites and INFO feature bits
  // ---------------------------------------------------------------------------
  localparam logic [1:0] SitePsum   = 2'd0;   // 32-bit
  localparam logic [1:0] SiteAct    = 2'd1;   // 8-bit
  localparam logic [1:0] SiteWeight = 2'd2;   // 8-bit

  localparam int FeatStuckAt    = 0;
  localparam int FeatBypass     = 1;
  localparam int FeatSeu        = 2;   // transient flips (HasSeu)
  localparam int FeatRotation   = 3;
  localparam int FeatDefectPort = 4;   // hidden defect port (HasDefectPort)

  // ---------------------------------------------------------------------------
  // Transient-flip hash (protocol.md "Transient-flip hash")
  // ---------------------------------------------------------------------------
  localparam logic [31:0] HashK1   = 32'h9E3779B1;   // * pass p
  localparam logic [31:0] HashK2   = 32'h85EBCA77;   // * activation row m
  localparam logic [31:0] HashK3   = 32'hC2B2AE3D;   // * index i (row or column)
  localparam logic [31:0] HashMul1 = 32'h7FEB352D;   // mixing multiplies
  localparam logic [31:0] HashMul2 = 32'h846CA68B;
  localparam logic [31:0] HashAlphaPoly = 32'h0040_0007;  // x^32 + x^22 + x^2 + x + 1
  localparam logic [31:0] SeuRateMax = 32'h0800_0000; // 2^27: a flip every MAC

  // ---------------------------------------------------------------------------
  // State machines
  // ---------------------------------------------------------------------------
  // dla_frame_rx: one request frame (protocol.md section 1, receiver rules).
  typedef enum logic [2:0] {
    RxIdle    = 3'd0,   // the core executes or replies; no input taken
    RxHunt    = 3'd1,   // drop bytes until ReqSync
    RxHeader  = 3'd2,   // HeaderBytes header bytes
    RxPayload = 3'd3,   // len payload bytes into the payload buffer
    RxCrc     = 3'd4    // CrcBytes CRC bytes
  } rx_state_e;

  // dla_core: the controller.
  typedef enum logic [3:0] {
    StReceive    = 4'd0,   // dla_frame_rx receives a frame
    StLatch      = 4'd1,   // latch the CRC comparison
    StTileCount  = 4'd2,   // KT, NT; MATMUL: start the products
    StMultiply   = 4'd3,   // MATMUL: four products on dla_mul_serial
    StCheck      = 4'd4,   // status decision (dla_req_check), simple ops
    StWrite      = 4'd5,   // WRITE_WEIGHTS: one wmem word per cycle
    StPatchScan  = 4'd6,   // PATCH_WEIGHTS: range check of every entry
    StPatchApply = 4'd7,   // PATCH_WEIGHTS: one entry per cycle
    StMatmul     = 4'd8,   // dla_tile_seq runs the passes
    StReply      = 4'd9    // dla_reply_tx sends the reply
  } ctrl_state_e;

  // dla_mul_serial.
  typedef enum logic {
    MulIdle = 1'b0,
    MulBusy = 1'b1
  } mul_state_e;

  // dla_tile_seq: one MATMUL pass is TURN, LOAD, STREAM.
  typedef enum logic [1:0] {
    SeqIdle   = 2'd0,
    SeqTurn   = 2'd1,   // 1 cycle: read tile row 0, per-pass setup
    SeqLoad   = 2'd2,   // R cycles: weight rows into the array
    SeqStream = 2'd3    // M + R + C - 1 cycles: stream and drain
  } seq_state_e;

  // dla_reply_tx: one reply frame.
  typedef enum logic [2:0] {
    TxIdle    = 3'd0,
    TxSync    = 3'd1,   // RepSync
    TxHeader  = 3'd2,   // status, seq, len
    TxPayload = 3'd3,
    TxCrc     = 3'd4
  } tx_state_e;

  // dla_uart_rx: one 8N1 byte (board tops).
  typedef enum logic [1:0] {
    UartIdle  = 2'd0,
    UartStart = 2'd1,   // to the middle of the start bit, re-checked there
    UartData  = 2'd2,   // eight data bits, each sampled at its middle
    UartStop  = 2'd3
  } uart_rx_state_e;

endpackage
