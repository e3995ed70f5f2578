// Simple dual-port RAM: one write port and one synchronous read port (the
// read data is registered and held while re_i is low). Both of the core's
// banked buffers are built from it, so this is the one place a memory
// mapping would change: yosys maps it to iCE40 EBR and Xilinx BRAM. A read
// of the word written in the same cycle returns the old word; the core never
// depends on that (dla_core explains why for each buffer). No reset: the
// contents are datapath.
module dla_ram_1r1w #(
  parameter int Width = 8,
  parameter int Depth = 16,
  parameter int AW    = $clog2(Depth)
) (
  input  logic             clk_i,
  input  logic             we_i,
  input  logic [AW-1:0]    waddr_i,
  input  logic [Width-1:0] wdata_i,
  input  logic             re_i,
  input  logic [AW-1:0]    raddr_i,
  output logic [Width-1:0] rdata_o
);

  logic [Width-1:0] mem_q [Depth];
  logic [Width-1:0] rdata_q;

  always_ff @(posedge clk_i) begin
    if (we_i) begin
      mem_q[waddr_i] <= wdata_i;
    end
  end

  always_ff @(posedge clk_i) begin
    if (re_i) begin
      rdata_q <= mem_q[raddr_i];
    end
  end

  assign rdata_o = rdata_q;

endmodule
