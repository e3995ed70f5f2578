// Board top: dla_core behind an 8N1 UART (docs/protocol.md section 6: the
// same frames as dla_sim_top, one byte at a time).
//
//  * ClocksPerBit: the bit period in clock cycles (iCEBreaker: 12 MHz /
//    115200 baud = 104). 0 takes it from the cpb_i port instead, so one
//    Verilated model serves every baud rate (faultloop-verilated's virtual board);
//    a synthesised board ties it to a constant.
//  * ClocksPerBitFrac: eighths of a cycle added to a constant ClocksPerBit
//    (0..7; dla_uart_rx/tx alternate the bit length so the average is
//    exact): a rate that no integer divisor of the clock meets within 2 %
//    (ULX3S: 3 Mbaud from 25 MHz = 8 + 3/8). With ClocksPerBit = 0 it
//    comes from the cpb_frac_i port.
//  * The receiver feeds a RxFifoDepth-byte FIFO in front of the core: while
//    the core computes it takes no input (protocol.md section 1 rule 5); a
//    byte arriving at a full FIFO is dropped (the frame then fails its CRC
//    or times out and the host retries).
//  * IdleTimeout (clock cycles) must exceed one byte time, 10 * ClocksPerBit,
//    with margin: a partial frame is dropped after that much silence.
//  * The hidden defect port dft_* (HasDefectPort) writes the chip's own
//    stuck-at defects; the protocol cannot reach it: CLEAR_FAULTS and RESET
//    leave those defects in place, only rst_ni clears them.
//  * busy_o: the board has work in flight (a byte being received, buffered
//    bytes, the core computing or replying, a byte on the TX line); low
//    means nothing happens until the next input (an LED on a board).
module dla_uart_top #(
  parameter int ArrayRows     = 8,
  parameter int ArrayCols     = 8,
  parameter int WmemBytes     = 1 << 20,
  parameter int BufBytes      = 1 << 18,
  parameter int AccWords      = 1 << 17,
  parameter int IdleTimeout   = 1 << 16,
  parameter int ClocksPerBit     = 104,
  parameter int ClocksPerBitFrac = 0,
  parameter int RxFifoDepth      = 16,
  parameter bit HasDefectPort    = 1'b1,
  parameter bit HasSeu           = 1'b1,   // dla_core
  parameter bit FastPath         = 1'b1,   // dla_pe
  parameter int CpbW             = 16
) (
  input  logic            clk_i,
  input  logic            rst_ni,
  input  logic            uart_rx_i,
  output logic            uart_tx_o,
  input  logic [CpbW-1:0] cpb_i,     // used only when ClocksPerBit == 0
  input  logic [2:0]      cpb_frac_i,  // likewise: eighths of a cycle
  output logic            busy_o,
  // hidden defect port
  input  logic            dft_we_i,
  input  logic [7:0]      dft_row_i,
  input  logic [7:0]      dft_col_i,
  input  logic [1:0]      dft_site_i,
  input  logic [31:0]     dft_sa0_i,
  input  logic [31:0]     dft_sa1_i
);

  localparam int FAW = $clog2(RxFifoDepth);

  // Every top input is registered before it reaches logic, so nothing
  // depends combinationally on a port (which also keeps the Verilated
  // model's input-combinational region empty: it is evaluated every cycle).
  logic [CpbW-1:0] cpb;
  logic [2:0]      cpb_frac;
  if (ClocksPerBit == 0) begin : g_cpb_port
    logic [CpbW-1:0] cpb_q;
    logic [2:0]      cpb_frac_q;
    always_ff @(posedge clk_i) begin
      cpb_q      <= cpb_i;
      cpb_frac_q <= cpb_frac_i;
    end
    assign cpb      = cpb_q;
    assign cpb_frac = cpb_frac_q;
  end else begin : g_cpb_const
    assign cpb      = CpbW'(ClocksPerBit);
    assign cpb_frac = 3'(ClocksPerBitFrac);
    logic unused_cpb;
    assign unused_cpb = ^{cpb_i, cpb_frac_i};
  end

  // Hidden defect port: one write per dft_we_i cycle, applied a cycle later.
  logic        dft_we_q;                  // control
  logic [7:0]  dft_row_q, dft_col_q;      // datapath
  logic [1:0]  dft_site_q;
  logic [31:0] dft_sa0_q, dft_sa1_q;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      dft_we_q <= 1'b0;
    end else begin
      dft_we_q <= dft_we_i;
    end
  end

  always_ff @(posedge clk_i) begin
    if (dft_we_i) begin
      dft_row_q  <= dft_row_i;
      dft_col_q  <= dft_col_i;
      dft_site_q <= dft_site_i;
      dft_sa0_q  <= dft_sa0_i;
      dft_sa1_q  <= dft_sa1_i;
    end
  end

  // ---------------------------------------------------------------------------
  // Receiver and FIFO
  // ---------------------------------------------------------------------------
  logic       rx_valid, rx_busy;
  logic [7:0] rx_data;

  dla_uart_rx #(.CpbW(CpbW)) u_rx (
    .clk_i  (clk_i),
    .rst_ni (rst_ni),
    .cpb_i  (cpb),
    .frac_i (cpb_frac),
    .rx_i   (uart_rx_i),
    .valid_o(rx_valid),
    .data_o (rx_data),
    .busy_o (rx_busy)
  );

  logic [7:0]   fifo_q [RxFifoDepth];     // datapath
  logic [FAW:0] wptr_d, wptr_q, rptr_d, rptr_q;
  logic         fifo_empty, fifo_full, push, pop;
  logic         core_in_ready, core_in_max;

  assign fifo_empty = (wptr_q == rptr_q);
  assign fifo_full  = (wptr_q[FAW-1:0] == rptr_q[FAW-1:0]) && (wptr_q[FAW] != rptr_q[FAW]);
  assign push       = rx_valid && !fifo_full;
  assign pop        = !fifo_empty && core_in_ready;
  assign wptr_d     = push ? wptr_q + (FAW+1)'(1) : wptr_q;
  assign rptr_d     = pop ? rptr_q + (FAW+1)'(1) : rptr_q;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      wptr_q <= '0;
      rptr_q <= '0;
    end else begin
      wptr_q <= wptr_d;
      rptr_q <= rptr_d;
    end
  end

  always_ff @(posedge clk_i) begin
    if (push) begin
      fifo_q[wptr_q[FAW-1:0]] <= rx_data;
    end
  end

  // ---------------------------------------------------------------------------
  // Core (1-byte beats)
  // ---------------------------------------------------------------------------
  logic       core_out_valid, core_out_cnt, tx_ready, tx_busy;
  logic [7:0] core_out_data;

  dla_core #(
    .ArrayRows    (ArrayRows),
    .ArrayCols    (ArrayCols),
    .WmemBytes    (WmemBytes),
    .BufBytes     (BufBytes),
    .AccWords     (AccWords),
    .StreamBytes  (1),
    .IdleTimeout  (IdleTimeout),
    .HasDefectPort(HasDefectPort),
    .HasSeu       (HasSeu),
    .FastPath     (FastPath)
  ) u_core (
    .clk_i      (clk_i),
    .rst_ni     (rst_ni),
    .in_valid_i (!fifo_empty),
    .in_data_i  (fifo_q[rptr_q[FAW-1:0]]),
    .in_count_i (1'b1),
    .in_ready_o (core_in_ready),
    .in_max_o   (core_in_max),
    .out_valid_o(core_out_valid),
    .out_data_o (core_out_data),
    .out_count_o(core_out_cnt),
    .out_ready_i(tx_ready),
    .dft_we_i   (dft_we_q),
    .dft_row_i  (dft_row_q),
    .dft_col_i  (dft_col_q),
    .dft_site_i (dft_site_q),
    .dft_sa0_i  (dft_sa0_q),
    .dft_sa1_i  (dft_sa1_q)
  );

  // With 1-byte beats the core always offers and takes exactly one byte.
  logic unused_cnt;
  assign unused_cnt = ^{core_in_max, core_out_cnt};

  // ---------------------------------------------------------------------------
  // Transmitter
  // ---------------------------------------------------------------------------
  dla_uart_tx #(.CpbW(CpbW)) u_tx (
    .clk_i  (clk_i),
    .rst_ni (rst_ni),
    .cpb_i  (cpb),
    .frac_i (cpb_frac),
    .valid_i(core_out_valid),
    .data_i (core_out_data),
    .ready_o(tx_ready),
    .tx_o   (uart_tx_o),
    .busy_o (tx_busy)
  );

  assign busy_o = rx_busy || !fifo_empty || !core_in_ready || core_out_valid || tx_busy;

endmodule
