// iCEBreaker (iCE40UP5K) top: dla_uart_top on the 12 MHz oscillator and the
// FTDI UART (docs/boards.md). Power-on reset (and the user button) hold the
// design in reset for 16 cycles; the red LED shows busy_o, the green LED
// that the board is out of reset and idle.
//
// No hidden defect port on the FPGA (HasDefectPort = 0): its defects are
// the host's to inject. No SEU hash (HasSeu = 0, INFO feature bit 2 clear)
// and no simulation shortcut (FastPath = 0): both cost LUTs the UP5K does
// not have. Memory sizes are parameters (scripts/fpga/ice40.sh picks the
// array size that fits).
module dla_ice40_top #(
  parameter int ArrayRows    = 2,         // 4x4 does not fit a UP5K (docs/boards.md)
  parameter int ArrayCols    = 2,
  parameter int WmemBytes    = 131072,    // the four SPRAMs
  parameter int BufBytes     = 1024,      // EBR
  parameter int AccWords     = 1024,      // EBR
  parameter int ClocksPerBit = 104,       // 12 MHz / 115200 baud
  parameter bit HasSeu       = 1'b0,      // the SEU hash does not fit a UP5K
  parameter int IdleTimeout  = 1 << 20    // 87 ms at 12 MHz
) (
  input  logic clk_12m_i,
  input  logic btn_ni,
  input  logic uart_rx_i,
  output logic uart_tx_o,
  output logic led_red_no,
  output logic led_grn_no
);

  // Power-on reset: iCE40 flops start at 0 after configuration.
  logic [4:0] por_d, por_q;
  logic       rst_n;
  assign por_d = (!btn_ni) ? 5'd0 : (por_q[4] ? por_q : por_q + 5'd1);
  always_ff @(posedge clk_12m_i) begin
    por_q <= por_d;
  end
  assign rst_n = por_q[4];

  logic busy;

  dla_uart_top #(
    .ArrayRows    (ArrayRows),
    .ArrayCols    (ArrayCols),
    .WmemBytes    (WmemBytes),
    .BufBytes     (BufBytes),
    .AccWords     (AccWords),
    .IdleTimeout  (IdleTimeout),
    .ClocksPerBit (ClocksPerBit),
    .HasDefectPort(1'b0),
    .HasSeu       (HasSeu),
    .FastPath     (1'b0)
  ) u_dla (
    .clk_i     (clk_12m_i),
    .rst_ni    (rst_n),
    .uart_rx_i (uart_rx_i),
    .uart_tx_o (uart_tx_o),
    .cpb_i     (16'd0),
    .cpb_frac_i(3'd0),
    .busy_o    (busy),
    .dft_we_i  (1'b0),
    .dft_row_i (8'd0),
    .dft_col_i (8'd0),
    .dft_site_i(2'd0),
    .dft_sa0_i (32'd0),
    .dft_sa1_i (32'd0)
  );

  assign led_red_no = !busy;
  assign led_grn_no = !(rst_n && !busy);

endmodule
