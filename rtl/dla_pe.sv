// One processing element of the weight-stationary systolic array
// (docs/protocol.md section 4).
//
//  * act_i enters from the left; the PE multiplies its INPUT act_i and
//    registers (act_i masked by the act stuck-at masks) into act_q, which
//    feeds only the PEs to its right.
//  * psum_i enters from the top; psum_q = mask_psum(psum_i + act_i * w' [^ flip]).
//  * The weight register is loaded (through the weight masks) while the
//    controller loads a tile; it is held while the array computes.
//  * Bypass forwards psum_i and act_i unmasked, still one register per PE, so
//    the array timing does not depend on the bypass map; a bypassed PE does no
//    MAC and no flip. Its weight register loads 0 (bypass only changes
//    between MATMULs and every pass reloads the tile), so psum_i + act*w is
//    psum_i and the one adder serves both cases.
//  * Transient flips: the hash of (seed, pass p, activation row m, Row, Col)
//    is u_Row(m) ^ alpha*u_Col(m) (docs/protocol.md "Transient-flip hash"):
//    dla_array computes the index hashes u_i once per index and cycle and
//    sends u_Row right along the row with the activations (hr, with hv:
//    m is a real row, m < M) and alpha*u_Col down the column with the
//    partial sums (hc), one register per PE each, so every PE sees the two
//    words of exactly the row m it multiplies. A PE only XORs and compares.
//
// Masks: v' = (v | sa1) & ~sa0, where sa0/sa1 are the injected masks (SET_FAULT,
// cleared by RESET/CLEAR_FAULTS) OR-ed with the hidden defect masks (only when
// HasDefectPort; cleared by rst_ni only).
//
// HasSeu = 0 drops the transient flips (the hash pipes and the compare; the
// core then refuses a non-zero SET_SEU rate).
// FastPath = 0 drops the clean_i shortcut, which only speeds up simulation:
// it is a second copy of the MAC that an FPGA would pay LUTs for.
module dla_pe #(
  parameter int Row           = 0,
  parameter int Col           = 0,
  parameter bit HasDefectPort = 1'b0,
  parameter bit HasSeu        = 1'b1,
  parameter bit FastPath      = 1'b1
) (
  input  logic        clk_i,
  input  logic        rst_ni,
  // systolic datapath
  input  logic        en_i,         // advance one step (stream phase)
  input  logic        clean_i,      // no fault, bypass or SEU configured anywhere
  input  logic [7:0]  act_i,
  input  logic [31:0] psum_i,
  output logic [7:0]  act_o,
  output logic [31:0] psum_o,
  // weight load: the array broadcasts one physical row per cycle
  input  logic        wload_i,
  input  logic [7:0]  wrow_i,       // zero-extended row index
  input  logic [7:0]  wdata_i,
  // configuration writes (broadcast; each PE matches its own row/col)
  input  logic        cfg_any_i,    // clear_i | cfg_we_i | byp_we_i | dft_we_i
  input  logic [7:0]  cfg_row_i,    // zero-extended
  input  logic [7:0]  cfg_col_i,
  input  logic        clear_i,      // clear injected masks and bypass (all PEs)
  input  logic        cfg_we_i,     // SET_FAULT
  input  logic [1:0]  cfg_site_i,   // 0 psum, 1 act, 2 weight
  input  logic [31:0] cfg_sa0_i,
  input  logic [31:0] cfg_sa1_i,
  input  logic        byp_we_i,     // SET_BYPASS
  input  logic        byp_i,
  // hidden defects (ignored unless HasDefectPort)
  input  logic        dft_we_i,
  input  logic [7:0]  dft_row_i,
  input  logic [7:0]  dft_col_i,
  input  logic [1:0]  dft_site_i,
  input  logic [31:0] dft_sa0_i,
  input  logic [31:0] dft_sa1_i,
  // transient faults
  input  logic        seu_en_i,     // rate != 0
  input  logic [27:0] seu_rate_i,   // flip if (h >> 5) < rate
  input  logic [31:0] hr_i,         // u_Row(m) of the row m at act_i
  input  logic        hv_i,         // that m is a real row (m < M)
  input  logic [31:0] hc_i,         // alpha * u_Col(m) of the row m at psum_i
  output logic [31:0] hr_o,
  output logic        hv_o,
  output logic [31:0] hc_o,
  // flips this cycle in this row so far: nflip_o = nflip_i + this PE's flip
  // (0 unless en_i and seu_en_i)
  input  logic [7:0]  nflip_i,
  output logic [7:0]  nflip_o
);

  localparam logic [7:0]  Row8   = 8'(Row);
  localparam logic [7:0]  Col8   = 8'(Col);

  // Configuration writes are rare. The array broadcasts the written values
  // (already zero for clear_i); the write enables are decoded inside the
  // registers' cfg_any_i branch, so an idle PE costs the Verilated model no
  // per-cycle decode and no per-register copies.
  // ---------------------------------------------------------------------------
  // Fault configuration registers (control: reset)
  // ---------------------------------------------------------------------------
  logic [31:0] ps_sa0_q, ps_sa1_q;
  logic [7:0]  ac_sa0_q, ac_sa1_q;
  logic [7:0]  wt_sa0_q, wt_sa1_q;
  logic        byp_q;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      ps_sa0_q <= '0;
      ps_sa1_q <= '0;
      ac_sa0_q <= '0;
      ac_sa1_q <= '0;
      wt_sa0_q <= '0;
      wt_sa1_q <= '0;
      byp_q    <= 1'b0;
    end else if (cfg_any_i) begin
      if (clear_i || (cfg_we_i && cfg_site_i == dla_pkg::SitePsum && cfg_row_i == Row8 && cfg_col_i == Col8)) begin
        ps_sa0_q <= cfg_sa0_i;
        ps_sa1_q <= cfg_sa1_i;
      end
      if (clear_i || (cfg_we_i && cfg_site_i == dla_pkg::SiteAct && cfg_row_i == Row8 && cfg_col_i == Col8)) begin
        ac_sa0_q <= cfg_sa0_i[7:0];
        ac_sa1_q <= cfg_sa1_i[7:0];
      end
      if (clear_i || (cfg_we_i && cfg_site_i == dla_pkg::SiteWeight && cfg_row_i == Row8 && cfg_col_i == Col8)) begin
        wt_sa0_q <= cfg_sa0_i[7:0];
        wt_sa1_q <= cfg_sa1_i[7:0];
      end
      if (clear_i || (byp_we_i && cfg_row_i == Row8 && cfg_col_i == Col8)) begin
        byp_q <= byp_i;
      end
    end
  end

  // Effective masks (injected | hidden defect).
  logic [31:0] ps_sa0, ps_sa1;
  logic [7:0]  ac_sa0, ac_sa1, wt_sa0, wt_sa1;

  if (HasDefectPort) begin : g_dft
    logic [31:0] dps_sa0_d, dps_sa0_q, dps_sa1_d, dps_sa1_q;
    logic [7:0]  dac_sa0_d, dac_sa0_q, dac_sa1_d, dac_sa1_q;
    logic [7:0]  dwt_sa0_d, dwt_sa0_q, dwt_sa1_d, dwt_sa1_q;

    logic dft_upd;
    assign dft_upd = cfg_any_i && dft_we_i && (dft_row_i == Row8) && (dft_col_i == Col8);

    always_comb begin
      dps_sa0_d = dps_sa0_q;
      dps_sa1_d = dps_sa1_q;
      dac_sa0_d = dac_sa0_q;
      dac_sa1_d = dac_sa1_q;
      dwt_sa0_d = dwt_sa0_q;
      dwt_sa1_d = dwt_sa1_q;
      if (dft_upd) begin
        unique case (dft_site_i)
          dla_pkg::SitePsum: begin
            dps_sa0_d = dft_sa0_i;
            dps_sa1_d = dft_sa1_i;
          end
          dla_pkg::SiteAct: begin
            dac_sa0_d = dft_sa0_i[7:0];
            dac_sa1_d = dft_sa1_i[7:0];
          end
          dla_pkg::SiteWeight: begin
            dwt_sa0_d = dft_sa0_i[7:0];
            dwt_sa1_d = dft_sa1_i[7:0];
          end
          default: ;
        endcase
      end
    end

    always_ff @(posedge clk_i) begin
      if (!rst_ni) begin
        dps_sa0_q <= '0;
        dps_sa1_q <= '0;
        dac_sa0_q <= '0;
        dac_sa1_q <= '0;
        dwt_sa0_q <= '0;
        dwt_sa1_q <= '0;
      end else if (dft_upd) begin
        dps_sa0_q <= dps_sa0_d;
        dps_sa1_q <= dps_sa1_d;
        dac_sa0_q <= dac_sa0_d;
        dac_sa1_q <= dac_sa1_d;
        dwt_sa0_q <= dwt_sa0_d;
        dwt_sa1_q <= dwt_sa1_d;
      end
    end

    assign ps_sa0 = ps_sa0_q | dps_sa0_q;
    assign ps_sa1 = ps_sa1_q | dps_sa1_q;
    assign ac_sa0 = ac_sa0_q | dac_sa0_q;
    assign ac_sa1 = ac_sa1_q | dac_sa1_q;
    assign wt_sa0 = wt_sa0_q | dwt_sa0_q;
    assign wt_sa1 = wt_sa1_q | dwt_sa1_q;
  end else begin : g_no_dft
    assign ps_sa0 = ps_sa0_q;
    assign ps_sa1 = ps_sa1_q;
    assign ac_sa0 = ac_sa0_q;
    assign ac_sa1 = ac_sa1_q;
    assign wt_sa0 = wt_sa0_q;
    assign wt_sa1 = wt_sa1_q;

    logic unused_dft;
    assign unused_dft = ^{dft_we_i, dft_row_i, dft_col_i, dft_site_i, dft_sa0_i, dft_sa1_i};
  end

  // ---------------------------------------------------------------------------
  // Datapath (no reset)
  // ---------------------------------------------------------------------------
  logic [7:0]  act_d, act_q;
  logic [31:0] psum_d, psum_q;
  logic [7:0]  w_d, w_q;

  // Weight register: loaded through the weight masks (a MATMUL always reloads
  // the tile, so masking at load equals masking at use). The row match sits
  // under the shared wload_i test.
  assign w_d = byp_q ? 8'h00 : ((wdata_i | wt_sa1) & ~wt_sa0);

  always_ff @(posedge clk_i) begin
    if (wload_i) begin
      if (wrow_i == Row8) begin
        w_q <= w_d;
      end
    end
  end

  // One step of the PE. act_d/psum_d are plain expressions with a single
  // reader (the en_i-enabled registers below), so the Verilated model
  // evaluates them only while the array streams; fmask (the transient flip)
  // is computed only while SEUs are enabled.
  logic [31:0] fmask;

  if (HasSeu) begin : g_seu
    // The hash pipes move with the activations (hr, hv) and the partial sums
    // (hc); hv is control (reset), so a pass never sees a stale real row.
    logic [31:0] hr_q, hc_q;
    logic        hv_q;

    always_ff @(posedge clk_i) begin
      if (!rst_ni) begin
        hv_q <= 1'b0;
      end else if (en_i) begin
        hv_q <= hv_i;
      end
    end

    always_ff @(posedge clk_i) begin
      if (en_i) begin
        hr_q <= hr_i;
        hc_q <= hc_i;
      end
    end

    assign hr_o = hr_q;
    assign hv_o = hv_q;
    assign hc_o = hc_q;

    // h is local so that the Verilated model computes it only while SEUs
    // stream, not on every cycle.
    always_comb begin
      logic [31:0] h;
      h = 32'h0;
      if (en_i && seu_en_i) begin
        h     = hr_i ^ hc_i;
        fmask = 32'h0;
        if (!byp_q && hv_i && {1'b0, h[31:5]} < seu_rate_i) begin
          fmask = 32'h1 << h[4:0];
        end
        nflip_o = nflip_i + 8'(fmask != 32'h0);
      end else begin
        fmask   = 32'h0;
        nflip_o = 8'h0;
      end
    end
  end else begin : g_no_seu
    assign fmask   = 32'h0;
    assign nflip_o = 8'h0;
    assign hr_o    = 32'h0;
    assign hv_o    = 1'b0;
    assign hc_o    = 32'h0;

    logic unused_seu;
    assign unused_seu = ^{seu_en_i, seu_rate_i, hr_i, hv_i, hc_i, nflip_i};
  end

  // A bypassed PE holds w_q = 0, so sum = psum_i; the masks and the flip are
  // gated off by byp_q.
  logic [31:0] sum;
  assign sum = psum_i + 32'($signed(act_i) * $signed(w_q));

  if (FastPath) begin : g_fast
    // clean_i: no fault, bypass or SEU is configured anywhere, so the masks
    // are zero and fmask is 0; the plain MAC gives the same result (and lets
    // the Verilated model skip the fault logic of all PEs with one test).
    assign act_d  = clean_i ? act_i :
                    byp_q   ? act_i : ((act_i | ac_sa1) & ~ac_sa0);
    assign psum_d = clean_i ? sum :
                    byp_q   ? sum : (((sum ^ fmask) | ps_sa1) & ~ps_sa0);
  end else begin : g_plain
    assign act_d  = byp_q ? act_i : ((act_i | ac_sa1) & ~ac_sa0);
    assign psum_d = byp_q ? sum : (((sum ^ fmask) | ps_sa1) & ~ps_sa0);

    logic unused_clean;
    assign unused_clean = clean_i;
  end

  always_ff @(posedge clk_i) begin
    if (en_i) begin
      act_q  <= act_d;
      psum_q <= psum_d;
    end
  end

  assign act_o  = act_q;
  assign psum_o = psum_q;

endmodule
