// ArrayRows x ArrayCols weight-stationary systolic array of dla_pe.
//
// Activations enter the left edge of each physical row (the controller
// applies the skew), move right one PE per cycle; partial sums enter the top
// of each column as 0 and move down one PE per cycle; psum_o carries the
// bottom row's registers. Weights are written one physical row per cycle.
module dla_array #(
  parameter int ArrayRows     = 16,
  parameter int ArrayCols     = 16,
  parameter bit HasDefectPort = 1'b0,
  parameter bit HasSeu        = 1'b1,   // dla_pe
  parameter bit FastPath      = 1'b1,   // dla_pe
  parameter int FlipW         = $clog2(ArrayRows * ArrayCols + 1)
) (
  input  logic                    clk_i,
  input  logic                    rst_ni,
  // datapath
  input  logic                    en_i,
  input  logic [8*ArrayRows-1:0]  act_i,      // left edge, physical row r in [8r +: 8]
  output logic [32*ArrayCols-1:0] psum_o,     // bottom edge, physical col c in [32c +: 32]
  // weight load
  input  logic                    wload_i,
  input  logic [7:0]              wrow_i,
  input  logic [8*ArrayCols-1:0]  wdata_i,    // physical col c in [8c +: 8]
  // injected faults
  input  logic                    clear_i,
  input  logic                    cfg_we_i,   // SET_FAULT
  input  logic                    byp_we_i,   // SET_BYPASS
  input  logic [7:0]              cfg_row_i,
  input  logic [7:0]              cfg_col_i,
  input  logic [1:0]              cfg_site_i,
  input  logic [31:0]             cfg_sa0_i,
  input  logic [31:0]             cfg_sa1_i,
  input  logic                    byp_i,
  // hidden defects
  input  logic                    dft_we_i,
  input  logic [7:0]              dft_row_i,
  input  logic [7:0]              dft_col_i,
  input  logic [1:0]              dft_site_i,
  input  logic [31:0]             dft_sa0_i,
  input  logic [31:0]             dft_sa1_i,
  // transient faults
  input  logic                    seu_en_i,
  input  logic [31:0]             seu_key_i,
  input  logic [31:0]             seu_tk_i,
  input  logic [31:0]             seu_t_i,
  input  logic [15:0]             seu_m_i,
  input  logic [27:0]             seu_rate_i,
  output logic [FlipW-1:0]        nflips_o    // flips this cycle
);

  localparam int R = ArrayRows;
  localparam int C = ArrayCols;

  // act_h[r][c]: activation entering PE(r,c) from the left (c = C: right edge, unused)
  // psum_v[r][c]: partial sum entering PE(r,c) from the top (r = R: bottom edge)
  // Packed: Verilator substitutes the PE registers for these part selects (an
  // unpacked array element would be a per-cycle copy of every PE output).
  // nflip_h[r][c]: flips this cycle in PEs (r, 0..c-1), chained along the row.
  logic [8*R*(C+1)-1:0]  act_h;
  logic [32*(R+1)*C-1:0] psum_v;
  logic [8*R*(C+1)-1:0]  nflip_h;
  logic [7:0]            row_flips [R];
  logic        cfg_any;
  logic [31:0] cfg_sa0, cfg_sa1;
  logic        byp;

  assign cfg_any = clear_i || cfg_we_i || byp_we_i || dft_we_i;

  // Fault-free fast path: inj_q is set by any SET_FAULT/SET_BYPASS and
  // cleared with the injected masks (clear_i), dft_q is set by any defect
  // write and cleared by reset only, like the defect masks. While both are
  // clear and SEUs are off, every mask, bypass bit and flip is zero.
  logic inj_d, inj_q, dft_d, dft_q, clean;

  always_comb begin
    inj_d = inj_q;
    dft_d = dft_q;
    if (clear_i) begin
      inj_d = 1'b0;
    end else if (cfg_we_i || byp_we_i) begin
      inj_d = 1'b1;
    end
    if (dft_we_i) begin
      dft_d = 1'b1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      inj_q <= 1'b0;
      dft_q <= 1'b0;
    end else begin
      inj_q <= inj_d;
      dft_q <= dft_d;
    end
  end

  assign clean = !inj_q && !dft_q && !seu_en_i;
  // CLEAR writes zeros to every PE through the same data path.
  assign cfg_sa0 = clear_i ? 32'h0 : cfg_sa0_i;
  assign cfg_sa1 = clear_i ? 32'h0 : cfg_sa1_i;
  assign byp     = clear_i ? 1'b0 : byp_i;

  for (genvar r = 0; r < R; r++) begin : g_row
    assign act_h[8*(r*(C+1)) +: 8]   = act_i[8*r +: 8];
    assign nflip_h[8*(r*(C+1)) +: 8] = 8'h0;
    assign row_flips[r]              = nflip_h[8*(r*(C+1)+C) +: 8];
    for (genvar c = 0; c < C; c++) begin : g_col
      dla_pe #(
        .Row          (r),
        .Col          (c),
        .HasDefectPort(HasDefectPort),
        .HasSeu       (HasSeu),
        .FastPath     (FastPath)
      ) u_pe (
        .clk_i     (clk_i),
        .rst_ni    (rst_ni),
        .en_i      (en_i),
        .clean_i   (clean),
        .act_i     (act_h[8*(r*(C+1)+c) +: 8]),
        .psum_i    (psum_v[32*(r*C+c) +: 32]),
        .act_o     (act_h[8*(r*(C+1)+c+1) +: 8]),
        .psum_o    (psum_v[32*((r+1)*C+c) +: 32]),
        .wload_i   (wload_i),
        .wrow_i    (wrow_i),
        .wdata_i   (wdata_i[8*c +: 8]),
        .cfg_any_i (cfg_any),
        .cfg_row_i (cfg_row_i),
        .cfg_col_i (cfg_col_i),
        .clear_i   (clear_i),
        .cfg_we_i  (cfg_we_i),
        .cfg_site_i(cfg_site_i),
        .cfg_sa0_i (cfg_sa0),
        .cfg_sa1_i (cfg_sa1),
        .byp_we_i  (byp_we_i),
        .byp_i     (byp),
        .dft_we_i  (dft_we_i),
        .dft_row_i (dft_row_i),
        .dft_col_i (dft_col_i),
        .dft_site_i(dft_site_i),
        .dft_sa0_i (dft_sa0_i),
        .dft_sa1_i (dft_sa1_i),
        .seu_en_i  (seu_en_i),
        .seu_key_i (seu_key_i),
        .seu_tk_i  (seu_tk_i),
        .seu_t_i   (seu_t_i),
        .seu_m_i   (seu_m_i),
        .seu_rate_i(seu_rate_i),
        .nflip_i   (nflip_h[8*(r*(C+1)+c) +: 8]),
        .nflip_o   (nflip_h[8*(r*(C+1)+c+1) +: 8])
      );
    end
  end

  for (genvar c = 0; c < C; c++) begin : g_edge
    assign psum_v[32*c +: 32]     = 32'h0;
    assign psum_o[32*c +: 32]     = psum_v[32*(R*C+c) +: 32];
  end

  // The right-edge activations leave the array.
  logic unused_act;
  always_comb begin
    unused_act = 1'b0;
    for (int r = 0; r < R; r++) begin
      unused_act = unused_act ^ (^act_h[8*(r*(C+1)+C) +: 8]);
    end
  end

  always_comb begin
    nflips_o = '0;
    if (seu_en_i && en_i) begin
      for (int r = 0; r < R; r++) begin
        nflips_o = nflips_o + FlipW'(row_flips[r]);
      end
    end
  end

endmodule
