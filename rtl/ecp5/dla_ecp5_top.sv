// ULX3S (ECP5 LFE5U-85F) top: dla_uart_top on the 25 MHz oscillator and the
// FT231X UART (docs/boards.md). A power-on counter (and button 0, PWR, which
// is active low) holds the design in reset for 16 cycles; LED 0 shows
// busy_o, LED 1 that the board is out of reset and idle.
//
// The full fault model: stuck-at masks on all three sites, bypass, rotation
// and the SEU hash (HasSeu = 1). No hidden defect port on the FPGA
// (HasDefectPort = 0: its defects are the host's to inject) and no
// simulation shortcut (FastPath = 0: a second MAC an FPGA would pay for).
// Sizes are parameters (scripts/fpga/ecp5.sh sets them).
//
// The bit period is ClocksPerBit + ClocksPerBitFrac / 8 cycles of the 25 MHz
// oscillator: 3 Mbaud, the FT231X's top rate, is 8 + 3/8 (+0.5 %), which no
// integer divisor of 25 MHz comes within 2 % of (docs/boards.md).
module dla_ecp5_top #(
  parameter int ArrayRows    = 8,
  parameter int ArrayCols    = 8,
  parameter int WmemBytes    = 262144,    // 128 DP16KD: the default MLP fits
  parameter int BufBytes     = 16384,     // 8 DP16KD
  parameter int AccWords     = 16384,     // 32 DP16KD
  parameter int ClocksPerBit = 217,       // 25 MHz / 115200 baud
  parameter int ClocksPerBitFrac = 0,     // eighths of a cycle (0..7)
  parameter bit HasSeu       = 1'b1,
  parameter int IdleTimeout  = 1 << 21    // 84 ms at 25 MHz
) (
  input  logic       clk_25mhz,
  input  logic       btn_pwr_ni,          // button 0 (PWR), low when pressed
  input  logic       ftdi_txd,            // FT231X TXD: into the FPGA
  output logic       ftdi_rxd,            // FT231X RXD: out of the FPGA
  output logic [1:0] led
);

  logic clk;
  assign clk = clk_25mhz;

  // Power-on reset: ECP5 flops start at 0 after configuration.
  logic [4:0] por_d, por_q;
  logic       rst_n;
  assign por_d = !btn_pwr_ni ? 5'd0 : (por_q[4] ? por_q : por_q + 5'd1);
  always_ff @(posedge clk) begin
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
    .ClocksPerBitFrac(ClocksPerBitFrac),
    .HasDefectPort(1'b0),
    .HasSeu       (HasSeu),
    .FastPath     (1'b0)
  ) u_dla (
    .clk_i     (clk),
    .rst_ni    (rst_n),
    .uart_rx_i (ftdi_txd),
    .uart_tx_o (ftdi_rxd),
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

  // ULX3S LEDs are active high.
  assign led[0] = busy;
  assign led[1] = rst_n && !busy;

endmodule
