// Banked memory of Depth elements over Banks dla_ram_1r1w: element a lives in
// bank a % Banks, row a / Banks. Any Banks consecutive elements from a base
// address then sit in Banks different banks, so one access of up to Banks
// consecutive elements takes one cycle: bank b holds element
// base + ((b - base) mod Banks), in the base's row, or the next row when
// b < base mod Banks. dla_core builds the request payload buffer (byte
// elements, lanes = an activation row, a write beat, a weight-row chunk) and
// the accumulators (32-bit elements, lanes = the columns of an output row)
// from it.
//
// Write port, one of two orders (BankOrder):
//   0  lane order: lane l of we_i/wdata_i writes element waddr_i + l.
//   1  bank order: bank b writes we_i[b]/wdata_i[b] to element
//      waddr_i + wlane_o[b]; wlane_o[b] = (b - waddr_i) mod Banks is the lane
//      that bank b holds. The accumulators compute each bank's data next to
//      its own read data, with no lane rotation between the two.
// Read port: like dla_ram_1r1w, the read issued with raddr_i (re_i high)
// returns a cycle later, held while re_i is low. rdata_bank_o is each bank's
// read data; rdata_o lane l (l < ReadLanes) is element raddr + l of the last
// read, zero while lanes_en_i is low (which also lets the simulator skip the
// rotation in cycles that do not use it).
module dla_banked_ram #(
  parameter int Width     = 8,
  parameter int Depth     = 64,      // elements; a power of two >= 2 * Banks
  parameter int Banks     = 4,       // a power of two >= 2
  parameter int ReadLanes = Banks,   // 1..Banks
  parameter bit BankOrder = 1'b0,
  parameter int AW        = $clog2(Depth),
  parameter int BW        = $clog2(Banks)
) (
  input  logic                       clk_i,
  // write port
  input  logic [Banks-1:0]           we_i,
  input  logic [AW-1:0]              waddr_i,
  input  logic [Width*Banks-1:0]     wdata_i,
  output logic [BW*Banks-1:0]        wlane_o,
  // read port
  input  logic                       re_i,
  input  logic [AW-1:0]              raddr_i,
  input  logic                       lanes_en_i,
  output logic [Width*Banks-1:0]     rdata_bank_o,
  output logic [Width*ReadLanes-1:0] rdata_o
);

  localparam int RowW = AW - BW;

  if (Banks < 2 || (Banks & (Banks - 1)) != 0 || Depth < 2 * Banks || (Depth & (Depth - 1)) != 0 ||
      ReadLanes < 1 || ReadLanes > Banks) begin : g_bad_params
`ifndef __ICARUS__
    $error("dla_banked_ram: Banks, Depth powers of two, Depth >= 2 * Banks, 1 <= ReadLanes <= Banks");
`endif
  end

  logic [RowW-1:0] wrow0, wrow1, rrow0, rrow1;

  assign wrow0 = waddr_i[AW-1:BW];
  assign wrow1 = wrow0 + RowW'(1);
  assign rrow0 = raddr_i[AW-1:BW];
  assign rrow1 = rrow0 + RowW'(1);

  for (genvar b = 0; b < Banks; b++) begin : g_bank
    logic [BW-1:0]    wlane;              // write lane held by this bank
    logic             we;
    logic [Width-1:0] wdata;

    assign wlane = BW'(b) - waddr_i[BW-1:0];
    assign wlane_o[BW*b +: BW] = wlane;

    if (BankOrder) begin : g_bank_order
      assign we    = we_i[b];
      assign wdata = wdata_i[Width*b +: Width];
    end else begin : g_lane_order
      assign we    = we_i[wlane];
      assign wdata = wdata_i[Width*wlane +: Width];
    end

    dla_ram_1r1w #(
      .Width(Width),
      .Depth(Depth / Banks)
    ) u_ram (
      .clk_i  (clk_i),
      .we_i   (we),
      .waddr_i((BW'(b) < waddr_i[BW-1:0]) ? wrow1 : wrow0),
      .wdata_i(wdata),
      .re_i   (re_i),
      .raddr_i((BW'(b) < raddr_i[BW-1:0]) ? rrow1 : rrow0),
      .rdata_o(rdata_bank_o[Width*b +: Width])
    );
  end

  // Bank of the last read's lane 0: the rotation of its read data.
  logic [BW-1:0] rbank_d, rbank_q;

  assign rbank_d = re_i ? raddr_i[BW-1:0] : rbank_q;

  always_ff @(posedge clk_i) begin
    rbank_q <= rbank_d;
  end

  // One continuous assignment per lane, not an always_comb with a default
  // and a loop: Icarus 11 re-runs that block forever once it has read data
  // (a zero-delay loop; simulated time stops), which this form avoids.
  for (genvar l = 0; l < ReadLanes; l++) begin : g_rlane
    logic [BW-1:0] bank;
    assign bank = rbank_q + BW'(l);
    assign rdata_o[Width*l +: Width] = lanes_en_i ? rdata_bank_o[Width*bank +: Width] : '0;
  end

endmodule
