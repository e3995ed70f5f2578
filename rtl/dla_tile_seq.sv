// MATMUL tile sequencer (docs/protocol.md sections 3, 4): runs the passes
// `for nt in 0..NT { for kt in 0..KT { pass } }` over the array, with the
// rotations, the activation skew, the output de-skew and the accumulation.
//
// Timing per pass (must match the COUNTERS formula M + 2R + C; busy_o is
// high in every one of these cycles):
//   TURN   1 cycle        issue the wmem read of tile row 0, per-pass setup
//   LOAD   R cycles       row i arrives, is written to physical row
//                         (i + rot_r) mod R rotated by rot_c; read row i+1
//   STREAM M + R + C - 1  logical activation row t enters (skewed: physical
//                         row pr delayed pr cycles); bottom outputs are
//                         de-skewed (column pc delayed C-1-pc cycles) so that
//                         in cycle t >= R+C-1 the whole output row
//                         m = t-(R+C-1) is accumulated at once.
//
// Memory reads are issued a cycle ahead with the next pointer values (the
// payload buffer: activation row t+1; the accumulators: the elements of the
// next output row), and the read data is used a cycle later. An
// accumulator read never meets a same-cycle write of the same element: the
// read row is m+1 and the written lanes c < nrem <= N of row m end before it.
//
// Accumulators (bank order, dla_banked_ram): in a stream cycle bank b
// accumulates logical column (b - acc_ptr) mod C of output row m, which sits
// on physical column (that + rot_c) mod C; its read data (issued with the
// same element a cycle ahead) is its own old value, so no lane rotation sits
// between the banks and the adders.
module dla_tile_seq #(
  parameter int ArrayRows = 16,
  parameter int ArrayCols = 16,
  parameter int WmemBytes = 1 << 20,
  parameter int BufBytes  = 1 << 18,
  parameter int AccWords  = 1 << 17,
  parameter int RowBits   = $clog2(ArrayRows),
  parameter int ColBits   = $clog2(ArrayCols),
  parameter int WmemAW    = $clog2(WmemBytes / ArrayCols),
  parameter int BufAW     = $clog2(BufBytes),
  parameter int AccAW     = $clog2(AccWords)
) (
  input  logic                      clk_i,
  input  logic                      rst_ni,
  // the MATMUL (fields hold while busy)
  input  logic                      start_i,       // run the passes from the next cycle
  input  logic [WmemAW-1:0]         base_word_i,   // wmem word of the first tile (base / C)
  input  logic [15:0]               m_i,
  input  logic [15:0]               k_i,
  input  logic [15:0]               n_i,
  input  logic [RowBits-1:0]        rot_rows_i,
  input  logic [ColBits-1:0]        rot_cols_i,
  input  logic [15:0]               k_tiles_i,     // KT
  input  logic [15:0]               n_tiles_i,     // NT
  input  logic [31:0]               seu_seed_i,
  input  logic [31:0]               pass_i,        // the pass counter p
  output logic                      busy_o,        // a pass cycle
  output logic                      stream_o,      // the array computes this cycle
  output logic                      pass_done_o,   // last cycle of a pass: p += 1
  output logic                      done_o,        // last cycle of the last pass
  // payload buffer reads: activation rows
  output logic                      buf_re_o,
  output logic [BufAW-1:0]          buf_raddr_o,
  input  logic [8*ArrayRows-1:0]    buf_rdata_i,   // bytes buf_raddr .. + R-1 of the last read
  // weight memory reads: tile rows
  output logic                      wmem_re_o,
  output logic [WmemAW-1:0]         wmem_raddr_o,
  input  logic [8*ArrayCols-1:0]    wmem_rdata_i,
  // array
  output logic [8*ArrayRows-1:0]    act_o,         // physical row pr in [8pr +: 8], skewed
  input  logic [32*ArrayCols-1:0]   psum_i,        // bottom edge, physical column pc
  output logic                      wload_o,
  output logic [7:0]                wrow_o,
  output logic [8*ArrayCols-1:0]    wdata_o,       // physical column pc
  output logic [31:0]               seu_key_o,     // seed ^ p * HashK1 of the pass
  output logic [31:0]               seu_tk_o,      // t * HashK2
  output logic [31:0]               seu_t_o,       // stream cycle t
  output logic [1:0]                seu_ahead_o,   // t two cycles from now - t
  // accumulators (bank order)
  output logic                      acc_re_o,
  output logic [AccAW-1:0]          acc_raddr_o,
  output logic [ArrayCols-1:0]      acc_we_o,
  output logic [AccAW-1:0]          acc_waddr_o,
  output logic [32*ArrayCols-1:0]   acc_wdata_o,
  input  logic [ColBits*ArrayCols-1:0] acc_wlane_i, // logical column written by bank b
  input  logic [32*ArrayCols-1:0]   acc_rdata_i    // per bank
);

  localparam int R       = ArrayRows;
  localparam int C       = ArrayCols;
  localparam int RB      = RowBits;
  localparam int CB      = ColBits;
  // A stream pass is M + R + C - 1 < 2^17 cycles.
  localparam int CycleW  = 17;

  typedef dla_pkg::seq_state_e seq_state_e;

  // control (reset)
  seq_state_e        state_d, state_q;
  logic [15:0]       k_tile_d, k_tile_q;       // kt
  logic [15:0]       n_tile_d, n_tile_q;       // nt
  logic [RB-1:0]     load_row_d, load_row_q;   // tile row being loaded
  logic [CycleW-1:0] t_d, t_q;                 // stream cycle
  logic [31:0]       tk_d, tk_q;               // t * HashK2
  logic [WmemAW-1:0] tile_word_d, tile_word_q; // wmem word of the current tile
  logic [BufAW-1:0]  act_ptr_d, act_ptr_q;     // payload offset of activation row t
  logic [AccAW-1:0]  acc_ptr_d, acc_ptr_q;     // element of output row m, column nt*C
  logic [16:0]       k_left_d, k_left_q;       // K - kt*R
  logic [16:0]       n_left_d, n_left_q;       // N - nt*C
  // datapath (no reset)
  logic [31:0]       key_d, key_q;

  logic stream, acc_write, pass_end, last_pass;

  assign stream    = (state_q == dla_pkg::SeqStream);
  assign acc_write = stream && (32'(t_q) >= 32'(R + C - 1));
  assign pass_end  = stream && (32'(t_q) == 32'(m_i) + 32'(R + C - 2));
  assign last_pass = (k_tile_q == k_tiles_i - 16'd1) && (n_tile_q == n_tiles_i - 16'd1);
  // Apart from the FSM (which takes start_i): no combinational cycle
  // through the controller.
  assign pass_done_o = pass_end;
  assign done_o      = pass_end && last_pass;

  // ---------------------------------------------------------------------------
  // Pass FSM
  // ---------------------------------------------------------------------------
  always_comb begin
    state_d     = state_q;
    k_tile_d    = k_tile_q;
    n_tile_d    = n_tile_q;
    load_row_d  = load_row_q;
    t_d         = t_q;
    tk_d        = tk_q;
    tile_word_d = tile_word_q;
    act_ptr_d   = act_ptr_q;
    acc_ptr_d   = acc_ptr_q;
    k_left_d    = k_left_q;
    n_left_d    = n_left_q;
    key_d       = key_q;
    wmem_re_o    = 1'b0;
    wmem_raddr_o = tile_word_q;
    wload_o      = 1'b0;

    unique case (state_q)
      dla_pkg::SeqTurn: begin
        wmem_re_o    = 1'b1;
        wmem_raddr_o = tile_word_q;
        key_d        = seu_seed_i ^ (pass_i * dla_pkg::HashK1);
        t_d          = '0;
        tk_d         = '0;
        load_row_d   = '0;
        k_left_d     = 17'(k_i) - (17'(k_tile_q) << RB);
        n_left_d     = 17'(n_i) - (17'(n_tile_q) << CB);
        act_ptr_d    = BufAW'(dla_pkg::LenMatmulHead) + BufAW'(32'(k_tile_q) << RB);
        acc_ptr_d    = AccAW'(32'(n_tile_q) << CB);
        state_d      = dla_pkg::SeqLoad;
      end

      dla_pkg::SeqLoad: begin
        wload_o      = 1'b1;
        wmem_re_o    = 1'b1;
        wmem_raddr_o = tile_word_q + WmemAW'(load_row_q) + WmemAW'(1);
        load_row_d   = load_row_q + RB'(1);
        if (load_row_q == RB'(R - 1)) begin
          state_d = dla_pkg::SeqStream;
        end
      end

      dla_pkg::SeqStream: begin
        t_d  = t_q + CycleW'(1);
        tk_d = tk_q + dla_pkg::HashK2;
        if (t_q < CycleW'(m_i)) begin
          act_ptr_d = act_ptr_q + BufAW'(k_i);
        end
        if (acc_write) begin
          acc_ptr_d = acc_ptr_q + AccAW'(n_i);
        end
        if (pass_end) begin
          tile_word_d = tile_word_q + WmemAW'(R);
          state_d     = dla_pkg::SeqTurn;
          if (k_tile_q == k_tiles_i - 16'd1) begin
            k_tile_d = '0;
            n_tile_d = n_tile_q + 16'd1;
            if (last_pass) begin
              state_d = dla_pkg::SeqIdle;
            end
          end else begin
            k_tile_d = k_tile_q + 16'd1;
          end
        end
      end

      default: ;   // SeqIdle
    endcase

    if (start_i) begin
      state_d     = dla_pkg::SeqTurn;
      k_tile_d    = '0;
      n_tile_d    = '0;
      tile_word_d = base_word_i;
    end
  end

  assign busy_o   = (state_q != dla_pkg::SeqIdle);
  assign stream_o = stream;

  // Reads for the next cycle: activation row t+1 (act_ptr_d) in every pass
  // cycle, the accumulators of the next output row while loading and
  // streaming.
  assign buf_re_o    = busy_o;
  assign buf_raddr_o = act_ptr_d;
  assign acc_re_o    = (state_q == dla_pkg::SeqLoad) || stream;
  assign acc_raddr_o = acc_ptr_d;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q     <= dla_pkg::SeqIdle;
      k_tile_q    <= '0;
      n_tile_q    <= '0;
      load_row_q  <= '0;
      t_q         <= '0;
      tk_q        <= '0;
      tile_word_q <= '0;
      act_ptr_q   <= '0;
      acc_ptr_q   <= '0;
      k_left_q    <= '0;
      n_left_q    <= '0;
    end else begin
      state_q     <= state_d;
      k_tile_q    <= k_tile_d;
      n_tile_q    <= n_tile_d;
      load_row_q  <= load_row_d;
      t_q         <= t_d;
      tk_q        <= tk_d;
      tile_word_q <= tile_word_d;
      act_ptr_q   <= act_ptr_d;
      acc_ptr_q   <= acc_ptr_d;
      k_left_q    <= k_left_d;
      n_left_q    <= n_left_d;
    end
  end

  always_ff @(posedge clk_i) begin
    key_q <= key_d;
  end

  assign seu_key_o = key_q;
  assign seu_tk_o  = tk_q;
  assign seu_t_o   = 32'(t_q);
  // The stream runs without gaps from t = 0, after R >= 2 load cycles that
  // hold t = 0: two cycles from now t is t + 2 while streaming, 1 in the
  // last load cycle, 0 in the earlier ones (dla_array's index hashes start
  // two cycles ahead).
  assign seu_ahead_o = stream ? 2'd2 :
                       (state_q == dla_pkg::SeqLoad && load_row_q == RB'(R - 1)) ? 2'd1 : 2'd0;

  // ---------------------------------------------------------------------------
  // Activations: logical row t (0 when t >= M or k >= K), rotated onto the
  // physical rows, then skewed
  // ---------------------------------------------------------------------------
  logic [8*R-1:0] act_logical, act_physical;

  always_comb begin
    logic [RB-1:0] lr;
    act_logical  = '0;
    act_physical = '0;
    lr           = '0;
    if (stream) begin
      if (t_q < CycleW'(m_i)) begin
        for (int r = 0; r < R; r++) begin
          if (17'(r) < k_left_q) begin
            act_logical[8*r +: 8] = buf_rdata_i[8*r +: 8];
          end
        end
      end
      for (int pr = 0; pr < R; pr++) begin
        lr = RB'(pr) - rot_rows_i;
        act_physical[8*pr +: 8] = act_logical[8*lr +: 8];
      end
    end
  end

  // Skew: physical row pr delayed by pr cycles (row 0 direct); de-skew:
  // bottom output of physical column pc delayed by C-1-pc cycles. Each delay
  // line is a circular buffer with a shared push pointer: the value pushed at
  // push n is read back at push n + delay (one write and one read per line
  // and cycle instead of shifting every stage).
  logic [RB-1:0]   skew_ptr_d, skew_ptr_q;
  logic [CB-1:0]   deskew_ptr_d, deskew_ptr_q;
  logic [32*C-1:0] psum_deskewed;

  assign skew_ptr_d   = stream ? skew_ptr_q + RB'(1) : skew_ptr_q;
  assign deskew_ptr_d = stream ? deskew_ptr_q + CB'(1) : deskew_ptr_q;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      skew_ptr_q   <= '0;
      deskew_ptr_q <= '0;
    end else begin
      skew_ptr_q   <= skew_ptr_d;
      deskew_ptr_q <= deskew_ptr_d;
    end
  end

  assign act_o[7:0] = act_physical[7:0];
  for (genvar pr = 1; pr < R; pr++) begin : g_skew
    logic [7:0]    mem_q [R];
    // The read pointer is a net of the pointer's width so that it wraps:
    // Icarus 11 evaluates `mem_q[skew_ptr_q - RB'(pr)]` wider and reads X
    // below index 0 (the rows after the first of a MATMUL came out X).
    logic [RB-1:0] rd_ptr;
    assign rd_ptr = skew_ptr_q - RB'(pr);
    always_ff @(posedge clk_i) begin
      if (stream) begin
        mem_q[skew_ptr_q] <= act_physical[8*pr +: 8];
      end
    end
    assign act_o[8*pr +: 8] = mem_q[rd_ptr];
  end

  assign psum_deskewed[32*(C-1) +: 32] = psum_i[32*(C-1) +: 32];
  for (genvar pc = 0; pc < C - 1; pc++) begin : g_deskew
    logic [31:0]   mem_q [C];
    logic [CB-1:0] rd_ptr;      // wraps (see g_skew)
    assign rd_ptr = deskew_ptr_q - CB'(C - 1 - pc);
    always_ff @(posedge clk_i) begin
      if (stream) begin
        mem_q[deskew_ptr_q] <= psum_i[32*pc +: 32];
      end
    end
    assign psum_deskewed[32*pc +: 32] = mem_q[rd_ptr];
  end

  // ---------------------------------------------------------------------------
  // Weights: tile row load_row, rotated by rot_c onto the physical columns
  // ---------------------------------------------------------------------------
  always_comb begin
    logic [CB-1:0] lc;
    wdata_o = '0;
    wrow_o  = '0;
    lc      = '0;
    if (wload_o) begin
      wrow_o = 8'(RB'(load_row_q + rot_rows_i));
      for (int pc = 0; pc < C; pc++) begin
        lc = CB'(pc) - rot_cols_i;
        wdata_o[8*pc +: 8] = wmem_rdata_i[8*lc +: 8];
      end
    end
  end

  // ---------------------------------------------------------------------------
  // Accumulation: output row m into elements acc_ptr + c, c < nrem
  // ---------------------------------------------------------------------------
  assign acc_waddr_o = acc_ptr_q;

  for (genvar b = 0; b < C; b++) begin : g_acc_bank
    logic [CB-1:0] lane, pc;               // logical column written by bank b, its physical column

    assign lane = acc_wlane_i[CB*b +: CB];
    assign pc   = lane + rot_cols_i;
    assign acc_we_o[b] = acc_write && (17'(lane) < n_left_q);
    assign acc_wdata_o[32*b +: 32] =
        psum_deskewed[32*pc +: 32] + ((k_tile_q != 16'd0) ? acc_rdata_i[32*b +: 32] : 32'h0);
  end

endmodule
