// Top for the Verilated model: dla_core with the byte-stream port of docs/protocol.md
// section 5. The hidden defect port is not present here (HasDefectPort = 0).
// Defaults are the configuration `Info::sim(rows, cols)` in
// sim-bridge/proto/src/frame.rs describes (the golden model's twin).
module dla_sim_top #(
  parameter int ArrayRows   = 16,
  parameter int ArrayCols   = 16,
  parameter int WmemBytes   = 1 << 20,
  parameter int BufBytes    = 1 << 18,
  parameter int AccWords    = 1 << 17,
  parameter int StreamBytes = 8,
  parameter int IdleTimeout = 4096,
  parameter bit HasSeu      = 1'b1,     // dla_core (0: the iCE40 build's core)
  parameter bit FastPath    = 1'b1,     // dla_pe
  parameter int CntW        = $clog2(StreamBytes + 1)
) (
  input  logic                     clk_i,
  input  logic                     rst_ni,
  input  logic                     in_valid_i,
  input  logic [8*StreamBytes-1:0] in_data_i,
  input  logic [CntW-1:0]          in_count_i,
  output logic                     in_ready_o,
  output logic [CntW-1:0]          in_max_o,
  output logic                     out_valid_o,
  output logic [8*StreamBytes-1:0] out_data_o,
  output logic [CntW-1:0]          out_count_o,
  input  logic                     out_ready_i
);

  dla_core #(
    .ArrayRows    (ArrayRows),
    .ArrayCols    (ArrayCols),
    .WmemBytes    (WmemBytes),
    .BufBytes     (BufBytes),
    .AccWords     (AccWords),
    .StreamBytes  (StreamBytes),
    .IdleTimeout  (IdleTimeout),
    .HasDefectPort(1'b0),
    .HasSeu       (HasSeu),
    .FastPath     (FastPath)
  ) u_core (
    .clk_i      (clk_i),
    .rst_ni     (rst_ni),
    .in_valid_i (in_valid_i),
    .in_data_i  (in_data_i),
    .in_count_i (in_count_i),
    .in_ready_o (in_ready_o),
    .in_max_o   (in_max_o),
    .out_valid_o(out_valid_o),
    .out_data_o (out_data_o),
    .out_count_o(out_count_o),
    .out_ready_i(out_ready_i),
    .dft_we_i   (1'b0),
    .dft_row_i  (8'h00),
    .dft_col_i  (8'h00),
    .dft_site_i (2'd0),
    .dft_sa0_i  (32'h0),
    .dft_sa1_i  (32'h0)
  );

endmodule
