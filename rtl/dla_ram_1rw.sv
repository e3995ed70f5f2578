// Single-port RAM of Depth words of Bytes bytes with byte write enables and
// a synchronous read (registered, held while re_i is low): the weight
// memory, one word per PE row (docs/protocol.md section 3). The owner never
// reads and writes in one cycle (dla_core: writes in WRITE_WEIGHTS and
// PATCH_WEIGHTS, reads in MATMUL passes), so one address serves both and
// yosys maps it to iCE40 SPRAM. No reset: the contents are datapath.
module dla_ram_1rw #(
  parameter int Bytes = 4,
  parameter int Depth = 16,
  parameter int AW    = $clog2(Depth)
) (
  input  logic               clk_i,
  input  logic [AW-1:0]      addr_i,
  input  logic [Bytes-1:0]   be_i,      // write byte l of the word
  input  logic [8*Bytes-1:0] wdata_i,
  input  logic               re_i,
  output logic [8*Bytes-1:0] rdata_o
);

  logic [8*Bytes-1:0] mem_q [Depth];
  logic [8*Bytes-1:0] rdata_q;

  always_ff @(posedge clk_i) begin
    for (int l = 0; l < Bytes; l++) begin
      if (be_i[l]) begin
        mem_q[addr_i][8*l +: 8] <= wdata_i[8*l +: 8];
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (re_i) begin
      rdata_q <= mem_q[addr_i];
    end
  end

  assign rdata_o = rdata_q;

endmodule
