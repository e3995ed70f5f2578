// ArrayRows x ArrayCols weight-stationary systolic array of dla_pe.
//
// Activations enter the left edge of each physical row (the controller
// applies the skew), move right one PE per cycle; partial sums enter the top
// of each column as 0 and move down one PE per cycle; psum_o carries the
// bottom row's registers. Weights are written one physical row per cycle.
//
// Transient flips (HasSeu): the hash of PE (r, c) for activation row m is
// u_r(m) ^ alpha*u_c(m) (docs/protocol.md "Transient-flip hash"). Row r
// receives the row m = t - r at stream cycle t, and so does the top of
// column r, so one index hash u_i = mix(key ^ (t - i)*K2 ^ i*K3) per index
// i < max(R, C) and cycle serves both: it enters row i at the left (with
// hv: t - i < M) and, times alpha, column i at the top; the PEs pass both
// on with their data. max(R, C) hash units instead of one per PE.
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
  input  logic [1:0]              seu_ahead_i, // t two cycles from now - seu_t_i
  input  logic [15:0]             seu_m_i,
  input  logic [27:0]             seu_rate_i,
  output logic [FlipW-1:0]        nflips_o    // flips of the previous cycle
);

  localparam int R = ArrayRows;
  localparam int C = ArrayCols;

  logic [7:0]            row_flips [R];
  // Configuration writes (SET_FAULT, SET_BYPASS, CLEAR_FAULTS and RESET's
  // clear) reach the PEs a cycle after the controller decodes them: the
  // decode of a request's fields and the broadcast to every PE's mask
  // registers were the critical path of the ECP5 8x8 (23.7 MHz routed). A
  // request's reply leaves after that cycle, so the next request always sees
  // the write.
  logic        clear_q, cfg_we_q, byp_we_q;
  logic [7:0]  cfg_row_q, cfg_col_q;
  logic [1:0]  cfg_site_q;
  logic [31:0] cfg_sa0_q, cfg_sa1_q;
  logic        byp_in_q;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      clear_q  <= 1'b0;
      cfg_we_q <= 1'b0;
      byp_we_q <= 1'b0;
    end else begin
      clear_q  <= clear_i;
      cfg_we_q <= cfg_we_i;
      byp_we_q <= byp_we_i;
    end
  end

  always_ff @(posedge clk_i) begin
    cfg_row_q  <= cfg_row_i;
    cfg_col_q  <= cfg_col_i;
    cfg_site_q <= cfg_site_i;
    cfg_sa0_q  <= cfg_sa0_i;
    cfg_sa1_q  <= cfg_sa1_i;
    byp_in_q   <= byp_i;
  end

  logic        cfg_any;
  logic [31:0] cfg_sa0, cfg_sa1;
  logic        byp;

  assign cfg_any = clear_q || cfg_we_q || byp_we_q || dft_we_i;

  // Fault-free fast path: inj_q is set by any SET_FAULT/SET_BYPASS and
  // cleared with the injected masks (clear_i), dft_q is set by any defect
  // write and cleared by reset only, like the defect masks. While both are
  // clear and SEUs are off, every mask, bypass bit and flip is zero.
  logic inj_d, inj_q, dft_d, dft_q, clean;

  always_comb begin
    inj_d = inj_q;
    dft_d = dft_q;
    if (clear_q) begin
      inj_d = 1'b0;
    end else if (cfg_we_q || byp_we_q) begin
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
  assign cfg_sa0 = clear_q ? 32'h0 : cfg_sa0_q;
  assign cfg_sa1 = clear_q ? 32'h0 : cfg_sa1_q;
  assign byp     = clear_q ? 1'b0 : byp_in_q;

  // The index hashes (zero while SEUs are off: nothing reads them then, and
  // the Verilated model skips the multiplies).
  localparam int NIdx = (R > C) ? R : C;
  logic [31:0] u_idx [NIdx];
  logic        v_idx [NIdx];

  // mix() of docs/protocol.md in two halves, each in its own cycle: the
  // index hash of the row a PE multiplies at cycle x is started at x - 2
  // (first multiply, mul_a_q) and finished at x - 1 (second multiply,
  // u_q), so the cycle the PEs use it holds only their compare and psum.
  // Started two cycles ahead, it is computed from the row the sequencer
  // will present at x: t + 2 while streaming, t + 1 in the last weight-load
  // cycle (the stream starts next cycle at t = 0), t = 0 in the earlier load
  // cycles (dla_tile_seq holds t = 0 and the pass key while loading, for at
  // least R >= 2 cycles). One multiply a cycle meets 25 MHz on the ECP5; two
  // chained set Fmax to ~21 MHz.
  function automatic logic [31:0] seu_mix_a(input logic [31:0] x);
    seu_mix_a = (x ^ (x >> 16)) * dla_pkg::HashMul1;
  endfunction

  function automatic logic [31:0] seu_mix_b(input logic [31:0] y);
    logic [31:0] h;
    h = (y ^ (y >> 15)) * dla_pkg::HashMul2;
    seu_mix_b = h ^ (h >> 16);
  endfunction

  for (genvar i = 0; i < NIdx; i++) begin : g_idx
    localparam logic [31:0] IK2 = 32'(i) * dla_pkg::HashK2;
    localparam logic [31:0] IK3 = 32'(i) * dla_pkg::HashK3;
    if (HasSeu) begin : g_hash
      // Row m = t' - i at t' = t + seu_ahead_i (dla_tile_seq), wrapping for t' < i:
      // m*K2 = tk + seu_ahead_i*K2 - i*K2.
      logic [31:0] mul_a_d, mul_a_q, u_d, u_q, mk2, m_idx;
      logic        va_d, va_q, vu_d, vu_q;
      // A mux of constants, not seu_ahead_i * K2: yosys mapped that product
      // to a DSP in front of the hash multiply, the routed critical path of
      // an ECP5 seed (23.6 MHz).
      logic [31:0] ahead_k2;
      assign ahead_k2 = (seu_ahead_i == 2'd2) ? 32'(2) * dla_pkg::HashK2 - IK2 :
                        (seu_ahead_i == 2'd1) ? dla_pkg::HashK2 - IK2 : 32'(0) - IK2;
      assign mk2   = seu_tk_i + ahead_k2;
      assign m_idx = seu_t_i + 32'(seu_ahead_i) - 32'(i);
      always_comb begin
        if (seu_en_i) begin
          mul_a_d = seu_mix_a(seu_key_i ^ mk2 ^ IK3);
          va_d    = m_idx < {16'h0000, seu_m_i};
          u_d     = seu_mix_b(mul_a_q);
          vu_d    = va_q;
        end else begin
          mul_a_d = 32'h0;
          va_d    = 1'b0;
          u_d     = 32'h0;
          vu_d    = 1'b0;
        end
      end
      always_ff @(posedge clk_i) begin
        mul_a_q <= mul_a_d;
        va_q    <= va_d;
        u_q     <= u_d;
        vu_q    <= vu_d;
      end
      assign u_idx[i] = seu_en_i ? u_q : 32'h0;
      assign v_idx[i] = seu_en_i && vu_q;
    end else begin : g_no_hash
      assign u_idx[i] = 32'h0;
      assign v_idx[i] = 1'b0;
    end
  end

  // alpha * u in GF(2)[x] / HashAlphaPoly: a shift and a conditional XOR.
  function automatic logic [31:0] seu_alpha(input logic [31:0] u);
    seu_alpha = {u[30:0], 1'b0} ^ (u[31] ? dla_pkg::HashAlphaPoly : 32'h0);
  endfunction

  if (!HasSeu) begin : g_no_seu_in
    logic unused_seu_in;
    assign unused_seu_in = ^{seu_key_i, seu_tk_i, seu_t_i, seu_ahead_i, seu_m_i};
  end

  // The PEs are chained through nets declared in each PE's generate block
  // (g_row[r].g_col[c].*_out), read by its right and lower neighbours: no
  // array-wide packed vector, which the Verilated model (traced or not) would
  // rebuild from every PE register on every cycle.
  for (genvar r = 0; r < R; r++) begin : g_row
    for (genvar c = 0; c < C; c++) begin : g_col
      logic [7:0]  act_in, act_out, nflip_in, nflip_out;
      logic [31:0] psum_in, psum_out;
      logic [31:0] hr_in, hr_out, hc_in, hc_out;
      logic        hv_in, hv_out;
      if (c == 0) begin : g_left
        assign act_in   = act_i[8*r +: 8];
        assign hr_in    = u_idx[r];
        assign hv_in    = v_idx[r];
        assign nflip_in = 8'h0;
      end else begin : g_right_of
        assign act_in   = g_row[r].g_col[c-1].act_out;
        assign hr_in    = g_row[r].g_col[c-1].hr_out;
        assign hv_in    = g_row[r].g_col[c-1].hv_out;
        assign nflip_in = g_row[r].g_col[c-1].nflip_out;
      end
      if (r == 0) begin : g_top
        assign psum_in = 32'h0;
        assign hc_in   = seu_alpha(u_idx[c]);
      end else begin : g_below
        assign psum_in = g_row[r-1].g_col[c].psum_out;
        assign hc_in   = g_row[r-1].g_col[c].hc_out;
      end
      // The right-edge activations and u_r and the bottom-edge alpha*u_c
      // leave the array.
      if (c == C - 1) begin : g_right_edge
        logic unused_right;
        assign unused_right = ^{act_out, hr_out, hv_out};
        assign row_flips[r] = nflip_out;
      end
      if (r == R - 1) begin : g_bottom_edge
        logic unused_bottom;
        assign unused_bottom = ^hc_out;
        assign psum_o[32*c +: 32] = psum_out;
      end

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
        .act_i     (act_in),
        .psum_i    (psum_in),
        .act_o     (act_out),
        .psum_o    (psum_out),
        .wload_i   (wload_i),
        .wrow_i    (wrow_i),
        .wdata_i   (wdata_i[8*c +: 8]),
        .cfg_any_i (cfg_any),
        .cfg_row_i (cfg_row_q),
        .cfg_col_i (cfg_col_q),
        .clear_i   (clear_q),
        .cfg_we_i  (cfg_we_q),
        .cfg_site_i(cfg_site_q),
        .cfg_sa0_i (cfg_sa0),
        .cfg_sa1_i (cfg_sa1),
        .byp_we_i  (byp_we_q),
        .byp_i     (byp),
        .dft_we_i  (dft_we_i),
        .dft_row_i (dft_row_i),
        .dft_col_i (dft_col_i),
        .dft_site_i(dft_site_i),
        .dft_sa0_i (dft_sa0_i),
        .dft_sa1_i (dft_sa1_i),
        .seu_en_i  (seu_en_i),
        .seu_rate_i(seu_rate_i),
        .hr_i      (hr_in),
        .hv_i      (hv_in),
        .hc_i      (hc_in),
        .hr_o      (hr_out),
        .hv_o      (hv_out),
        .hc_o      (hc_out),
        .nflip_i   (nflip_in),
        .nflip_o   (nflip_out)
      );
    end
  end

  // The flips of a cycle, summed over the rows, land in nflips_o one cycle
  // later: the row chains and the sum get a cycle of their own (on the ECP5
  // they were the critical path, 18.3 MHz). The last cycle of a pass never
  // flips (no PE holds a real row then), so the count is complete the cycle
  // after the pass.
  logic [FlipW-1:0] nflips_d, nflips_q;
  always_comb begin
    nflips_d = '0;
    if (seu_en_i && en_i) begin
      for (int r = 0; r < R; r++) begin
        nflips_d = nflips_d + FlipW'(row_flips[r]);
      end
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      nflips_q <= '0;
    end else begin
      nflips_q <= nflips_d;
    end
  end

  assign nflips_o = nflips_q;

endmodule
