// faultloop DLA core: the controller and its units. Normative behaviour:
// docs/protocol.md.
//
//   dla_frame_rx    request frames from the input stream (header, fields,
//                   payload into the payload buffer, CRC, idle timeout)
//   dla_req_check   the status decision of a received request
//   dla_mul_serial  the MATMUL request products (m*k, m*n, KT*NT, m*k*n)
//   dla_tile_seq    the MATMUL passes: array feeds, skew, accumulation
//   dla_reply_tx    reply frames into the output stream (2-entry FIFO)
//   dla_array       the systolic array of dla_pe
//   here            the controller FSM, COUNTERS and SEU registers, WRITE/
//                   PATCH_WEIGHTS, and the resources the units share: one
//                   dla_crc16 (receive and reply never overlap), the payload
//                   buffer's read port (controller and sequencer), the
//                   accumulators' read port (sequencer and transmitter), the
//                   wmem address (writes and reads never share a cycle).
//
// Byte stream ports follow docs/protocol.md section 5 (beats of up to
// StreamBytes bytes, byte 0 in bits 7:0). dla_sim_top exposes them directly.
// Both ports are registered (dla_frame_rx, dla_reply_tx): no logic depends
// combinationally on a port input.
//
// Reset: rst_ni is active low and SYNCHRONOUS throughout the RTL, against
// the lowRISC guide's asynchronous reset: the targets are iCE40 and ECP5
// FPGAs, whose flops take a synchronous set/reset for free (SB_DFFSR), the
// power-on reset of the iCE40 top is a synchronous counter anyway, and one
// clock domain with no reset synchronizer keeps the Verilated model exact.
// Only control registers are reset; datapath registers and memories are not.
//
// Dimensions (ArrayRows, ArrayCols, WmemBytes, BufBytes, AccWords,
// StreamBytes) must be powers of two; ArrayRows, ArrayCols in 2..128;
// AccWords >= 2*ArrayCols; WmemBytes >= 2*ArrayCols;
// BufBytes >= 2*max(ArrayRows, StreamBytes, 4); StreamBytes <= 4*ArrayCols
// (checked at elaboration).
//
// Memories (behavioural, no reset; every read is synchronous, so they map to
// block RAM: EBR/SPRAM on an iCE40, BRAM on a Xilinx part):
//   payload buffer  dla_banked_ram, PB banks of BufBytes/PB x 8,
//                   PB = max(ArrayRows, StreamBytes, 4): one write beat and
//                   any PB consecutive bytes (an activation row, a patch
//                   entry, a weight-row chunk) hit PB different banks.
//   wmem            dla_ram_1rw, WmemBytes/C x 8C: one word = one PE row
//                   (layout: protocol.md s3), byte enables: SPRAM.
//   accumulators    dla_banked_ram, C banks of AccWords/C x 32: the C
//                   results of one output row (and the words of one reply
//                   beat) hit C different banks.
// Reads are issued with the next cycle's address and used a cycle later; the
// read ports are selected by the units' current states (not by next-state
// logic, which sits behind the request checks: that path would set Fmax).
module dla_core #(
  parameter int ArrayRows     = 16,
  parameter int ArrayCols     = 16,
  parameter int WmemBytes     = 1 << 20,
  parameter int BufBytes      = 1 << 18,
  parameter int AccWords      = 1 << 17,
  parameter int StreamBytes   = 8,
  parameter int IdleTimeout   = 4096,
  parameter bit HasDefectPort = 1'b0,
  parameter bit HasSeu        = 1'b1,   // transient flips (feature bit 2)
  parameter bit FastPath      = 1'b1,   // dla_pe: simulation shortcut
  parameter int CntW          = $clog2(StreamBytes + 1)
) (
  input  logic                     clk_i,
  input  logic                     rst_ni,
  // request stream
  input  logic                     in_valid_i,
  input  logic [8*StreamBytes-1:0] in_data_i,
  input  logic [CntW-1:0]          in_count_i,
  output logic                     in_ready_o,
  output logic [CntW-1:0]          in_max_o,
  // reply stream
  output logic                     out_valid_o,
  output logic [8*StreamBytes-1:0] out_data_o,
  output logic [CntW-1:0]          out_count_o,
  input  logic                     out_ready_i,
  // hidden defect port (board tops; ignored unless HasDefectPort)
  input  logic                     dft_we_i,
  input  logic [7:0]               dft_row_i,
  input  logic [7:0]               dft_col_i,
  input  logic [1:0]               dft_site_i,
  input  logic [31:0]              dft_sa0_i,
  input  logic [31:0]              dft_sa1_i
);

  // ---------------------------------------------------------------------------
  // Parameters
  // ---------------------------------------------------------------------------
  localparam int R          = ArrayRows;
  localparam int C          = ArrayCols;
  localparam int SB         = StreamBytes;
  localparam int RowBits    = $clog2(R);
  localparam int ColBits    = $clog2(C);
  localparam int WmemWords  = WmemBytes / C;
  localparam int WmemAW     = $clog2(WmemWords);
  localparam int BufAW      = $clog2(BufBytes);
  localparam int AccAW      = $clog2(AccWords);
  localparam int RdWords    = (SB >= 4) ? SB / 4 : 1;   // accumulator words per reply beat
  localparam int FlipW      = $clog2(R * C + 1);
  localparam int BufBanks0  = (R > SB) ? R : SB;
  localparam int BufBanks   = (BufBanks0 > 4) ? BufBanks0 : 4;
  localparam int BufBankW   = $clog2(BufBanks);
  // Counter widths: a request payload is at most BufBytes (longer ones are
  // refused from the header), a WRITE ends inside wmem (checked before it
  // starts). Narrow counters keep the FPGA build small.
  localparam int PayloadW   = BufAW + 1;
  localparam int WmemByteW  = $clog2(WmemBytes) + 1;

  localparam logic [31:0] Features = (32'(1'b1)          << dla_pkg::FeatStuckAt)  |
                                     (32'(1'b1)          << dla_pkg::FeatBypass)   |
                                     (32'(HasSeu)        << dla_pkg::FeatSeu)      |
                                     (32'(1'b1)          << dla_pkg::FeatRotation) |
                                     (32'(HasDefectPort) << dla_pkg::FeatDefectPort);

  // Elaboration-time checks. $error in a generate block stops Verilator and
  // Yosys; Icarus 11 has no elaboration-time tasks and skips the check.
  if ((R & (R - 1)) != 0 || R < 2 || R > 128 ||
      (C & (C - 1)) != 0 || C < 2 || C > 128) begin : g_bad_array
`ifndef __ICARUS__
    $error("dla_core: ArrayRows and ArrayCols must be powers of two in 2..128");
`endif
  end
  if ((WmemBytes & (WmemBytes - 1)) != 0 || (BufBytes & (BufBytes - 1)) != 0 ||
      (AccWords & (AccWords - 1)) != 0 || (SB & (SB - 1)) != 0 || SB < 1) begin : g_bad_sizes
`ifndef __ICARUS__
    $error("dla_core: WmemBytes, BufBytes, AccWords, StreamBytes must be powers of two");
`endif
  end
  if (AccWords < 2 * C || WmemBytes < 2 * C || BufBytes < 2 * BufBanks || SB > 4 * C) begin : g_bad_ratios
`ifndef __ICARUS__
    $error("dla_core: need AccWords, WmemBytes >= 2*ArrayCols, BufBytes >= 2*max(ArrayRows, StreamBytes, 4), StreamBytes <= 4*ArrayCols");
`endif
  end

  typedef dla_pkg::ctrl_state_e ctrl_state_e;

  // ---------------------------------------------------------------------------
  // Controller registers
  // ---------------------------------------------------------------------------
  // control (reset)
  ctrl_state_e          state_d, state_q;
  logic [15:0]          crc_d, crc_q;             // running CRC (receive or reply)
  logic [27:0]          seu_rate_d, seu_rate_q;
  logic [31:0]          seu_seed_d, seu_seed_q;
  logic [31:0]          pass_d, pass_q;           // pass counter p
  logic [63:0]          cycles_d, cycles_q;
  logic [63:0]          macs_d, macs_q;
  logic [63:0]          flips_d, flips_q;
  logic [PayloadW-1:0]  write_src_d, write_src_q;   // WRITE/PATCH payload offset
  logic [WmemByteW-1:0] write_dst_d, write_dst_q;   // WRITE_WEIGHTS wmem byte
  logic [PayloadW-1:0]  write_left_d, write_left_q; // WRITE_WEIGHTS bytes left
  // datapath (no reset)
  logic                 crc_ok_d, crc_ok_q;
  logic [1:0]           product_d, product_q;     // product on the multiplier: 0 m*k,
                                                  // 1 m*n, 2 KT*NT, 3 m*k*n
  logic [31:0]          mk_d, mk_q;               // m*k
  logic [31:0]          mn_d, mn_q;               // m*n
  logic [31:0]          tiles_d, tiles_q;         // KT*NT
  logic [47:0]          mkn_d, mkn_q;             // m*k*n
  logic [15:0]          k_tiles_d, k_tiles_q;     // KT = ceil(K/R)
  logic [15:0]          n_tiles_d, n_tiles_q;     // NT = ceil(N/C)

  // ---------------------------------------------------------------------------
  // Frame receiver and the request
  // ---------------------------------------------------------------------------
  logic                  rx_start, rx_frame_done, rx_len_bad;
  logic [7:0]            op;
  logic [15:0]           rx_seq;
  logic [31:0]           len;
  logic [8*dla_pkg::FieldBytes-1:0] fields;
  logic [15:0]           rx_crc;
  logic                  rx_crc_init, rx_crc_en;
  logic [8*SB-1:0]       rx_crc_data;
  logic [CntW-1:0]       rx_crc_count;
  logic [SB-1:0]         buf_we;
  logic [BufAW-1:0]      buf_waddr;
  logic [8*SB-1:0]       buf_wdata;

  dla_frame_rx #(
    .StreamBytes(SB),
    .BufBytes   (BufBytes),
    .IdleTimeout(IdleTimeout)
  ) u_frame_rx (
    .clk_i       (clk_i),
    .rst_ni      (rst_ni),
    .in_valid_i  (in_valid_i),
    .in_data_i   (in_data_i),
    .in_count_i  (in_count_i),
    .in_ready_o  (in_ready_o),
    .in_max_o    (in_max_o),
    .start_i     (rx_start),
    .frame_done_o(rx_frame_done),
    .len_bad_o   (rx_len_bad),
    .op_o        (op),
    .seq_o       (rx_seq),
    .len_o       (len),
    .fields_o    (fields),
    .crc_o       (rx_crc),
    .crc_init_o  (rx_crc_init),
    .crc_en_o    (rx_crc_en),
    .crc_data_o  (rx_crc_data),
    .crc_count_o (rx_crc_count),
    .buf_we_o    (buf_we),
    .buf_waddr_o (buf_waddr),
    .buf_wdata_o (buf_wdata)
  );

  // Request fields (payload bytes 0..11) by opcode.
  logic [31:0] req_addr;       // WRITE_WEIGHTS addr, MATMUL base, SET_SEU rate
  logic [31:0] req_seed;       // SET_SEU
  logic [7:0]  req_row, req_col, req_site;                 // SET_FAULT, SET_BYPASS
  logic        req_bypass_on;  // SET_BYPASS on (a u8 in the site's place; > 1 is refused)
  logic [31:0] req_sa0, req_sa1;
  logic [15:0] req_m, req_k, req_n;                        // MATMUL
  logic [7:0]  req_rot_rows, req_rot_cols;

  assign req_addr      = fields[31:0];
  assign req_seed      = fields[63:32];
  assign req_row       = fields[7:0];
  assign req_col       = fields[15:8];
  assign req_site      = fields[23:16];
  assign req_bypass_on = fields[16];
  assign req_sa0       = fields[55:24];
  assign req_sa1       = fields[87:56];
  assign req_m         = fields[47:32];
  assign req_k         = fields[63:48];
  assign req_n         = fields[79:64];
  assign req_rot_rows  = fields[87:80];
  assign req_rot_cols  = fields[95:88];

  // ---------------------------------------------------------------------------
  // Request checks and products
  // ---------------------------------------------------------------------------
  logic [7:0]  status;
  logic        mul_start, mul_done;
  logic [31:0] mul_a;
  logic [15:0] mul_b;
  logic [47:0] mul_result;

  dla_req_check #(
    .ArrayRows(R),
    .ArrayCols(C),
    .WmemBytes(WmemBytes),
    .AccWords (AccWords),
    .HasSeu   (HasSeu)
  ) u_req_check (
    .en_i      (state_q == dla_pkg::StCheck),
    .crc_ok_i  (crc_ok_q),
    .op_i      (op),
    .len_i     (len),
    .addr_i    (req_addr),
    .row_i     (req_row),
    .col_i     (req_col),
    .site_i    (req_site),
    .sa0_i     (req_sa0),
    .sa1_i     (req_sa1),
    .m_i       (req_m),
    .k_i       (req_k),
    .n_i       (req_n),
    .rot_rows_i(req_rot_rows),
    .rot_cols_i(req_rot_cols),
    .mk_i      (mk_q),
    .mn_i      (mn_q),
    .tiles_i   (tiles_q),
    .status_o  (status)
  );

  dla_mul_serial #(
    .AWidth(32),
    .BWidth(16)
  ) u_mul (
    .clk_i   (clk_i),
    .rst_ni  (rst_ni),
    .start_i (mul_start),
    .a_i     (mul_a),
    .b_i     (mul_b),
    .done_o  (mul_done),
    .result_o(mul_result)
  );

  // ---------------------------------------------------------------------------
  // Memories
  // ---------------------------------------------------------------------------
  // Payload buffer: written by the receiver, read by the controller (WRITE,
  // PATCH) and the sequencer (activations), never in the same cycle.
  logic                     buf_re, ctrl_buf_re, seq_buf_re;
  logic [BufAW-1:0]         buf_raddr, ctrl_buf_raddr, seq_buf_raddr;
  logic [8*BufBanks-1:0]    buf_rdata;      // bytes buf_raddr + 0..PB-1 of the last read
  logic [8*BufBanks-1:0]    unused_buf_rdata_bank;
  logic [BufBankW*BufBanks-1:0] unused_buf_wlane;

  assign buf_re    = ctrl_buf_re || seq_buf_re;
  assign buf_raddr = seq_buf_re ? seq_buf_raddr : ctrl_buf_raddr;

  dla_banked_ram #(
    .Width    (8),
    .Depth    (BufBytes),
    .Banks    (BufBanks),
    .BankOrder(1'b0)
  ) u_payload_buf (
    .clk_i       (clk_i),
    .we_i        (BufBanks'(buf_we)),
    .waddr_i     (buf_waddr),
    .wdata_i     ((8*BufBanks)'(buf_wdata)),
    .wlane_o     (unused_buf_wlane),
    .re_i        (buf_re),
    .raddr_i     (buf_raddr),
    .lanes_en_i  (1'b1),
    .rdata_bank_o(unused_buf_rdata_bank),
    .rdata_o     (buf_rdata)
  );

  // Weight memory: written by the controller, read by the sequencer. The
  // two never share a cycle (different controller states); the write
  // enables are gated with the read anyway, which makes that visible to
  // synthesis: yosys merges the ports into the single port of an iCE40
  // SPRAM only when it can prove them exclusive combinationally.
  logic                 wmem_re;
  logic [WmemAW-1:0]    wmem_raddr, wmem_waddr;
  logic [C-1:0]         wmem_be;
  logic [8*C-1:0]       wmem_wdata, wmem_rdata;

  dla_ram_1rw #(
    .Bytes(C),
    .Depth(WmemWords)
  ) u_wmem (
    .clk_i  (clk_i),
    .addr_i (wmem_re ? wmem_raddr : wmem_waddr),
    .be_i   (wmem_re ? '0 : wmem_be),
    .wdata_i(wmem_wdata),
    .re_i   (wmem_re),
    .rdata_o(wmem_rdata)
  );

  // Accumulators: written by the sequencer, read by the sequencer (its old
  // values) and the transmitter (the reply), never in the same cycle.
  logic                  acc_re, seq_acc_re, tx_acc_re;
  logic [AccAW-1:0]      acc_raddr, seq_acc_raddr, tx_acc_raddr;
  logic [C-1:0]          acc_we;
  logic [AccAW-1:0]      acc_waddr;
  logic [32*C-1:0]       acc_wdata, acc_rdata_bank;
  logic [ColBits*C-1:0]  acc_wlane;
  logic [32*RdWords-1:0] acc_rdata;         // reply: words acc_raddr + 0..RdWords-1
  logic                  tx_busy;

  assign acc_re    = seq_acc_re || tx_acc_re;
  assign acc_raddr = tx_acc_re ? tx_acc_raddr : seq_acc_raddr;

  dla_banked_ram #(
    .Width    (32),
    .Depth    (AccWords),
    .Banks    (C),
    .ReadLanes(RdWords),
    .BankOrder(1'b1)
  ) u_acc (
    .clk_i       (clk_i),
    .we_i        (acc_we),
    .waddr_i     (acc_waddr),
    .wdata_i     (acc_wdata),
    .wlane_o     (acc_wlane),
    .re_i        (acc_re),
    .raddr_i     (acc_raddr),
    .lanes_en_i  (tx_busy),
    .rdata_bank_o(acc_rdata_bank),
    .rdata_o     (acc_rdata)
  );

  // ---------------------------------------------------------------------------
  // Tile sequencer and array
  // ---------------------------------------------------------------------------
  logic             seq_start, seq_busy, seq_stream, seq_pass_done, seq_done;
  logic [8*R-1:0]   act;
  logic [32*C-1:0]  psum;
  logic             wload;
  logic [7:0]       wrow;
  logic [8*C-1:0]   wdata;
  logic [31:0]      seu_key, seu_tk, seu_t;
  logic [1:0]       seu_ahead;
  logic             arr_clear, cfg_we, bypass_we;
  logic [FlipW-1:0] nflips;
  logic             dft_we;

  dla_tile_seq #(
    .ArrayRows(R),
    .ArrayCols(C),
    .WmemBytes(WmemBytes),
    .BufBytes (BufBytes),
    .AccWords (AccWords)
  ) u_tile_seq (
    .clk_i       (clk_i),
    .rst_ni      (rst_ni),
    .start_i     (seq_start),
    .base_word_i (WmemAW'(req_addr >> ColBits)),
    .m_i         (req_m),
    .k_i         (req_k),
    .n_i         (req_n),
    .rot_rows_i  (req_rot_rows[RowBits-1:0]),
    .rot_cols_i  (req_rot_cols[ColBits-1:0]),
    .k_tiles_i   (k_tiles_q),
    .n_tiles_i   (n_tiles_q),
    .seu_seed_i  (seu_seed_q),
    .pass_i      (pass_q),
    .busy_o      (seq_busy),
    .stream_o    (seq_stream),
    .pass_done_o (seq_pass_done),
    .done_o      (seq_done),
    .buf_re_o    (seq_buf_re),
    .buf_raddr_o (seq_buf_raddr),
    .buf_rdata_i (buf_rdata[8*R-1:0]),
    .wmem_re_o   (wmem_re),
    .wmem_raddr_o(wmem_raddr),
    .wmem_rdata_i(wmem_rdata),
    .act_o       (act),
    .psum_i      (psum),
    .wload_o     (wload),
    .wrow_o      (wrow),
    .wdata_o     (wdata),
    .seu_key_o   (seu_key),
    .seu_tk_o    (seu_tk),
    .seu_t_o     (seu_t),
    .seu_ahead_o (seu_ahead),
    .acc_re_o    (seq_acc_re),
    .acc_raddr_o (seq_acc_raddr),
    .acc_we_o    (acc_we),
    .acc_waddr_o (acc_waddr),
    .acc_wdata_o (acc_wdata),
    .acc_wlane_i (acc_wlane),
    .acc_rdata_i (acc_rdata_bank)
  );

  assign dft_we = HasDefectPort && dft_we_i && (32'(dft_row_i) < 32'(R)) &&
                  (32'(dft_col_i) < 32'(C)) && (dft_site_i != 2'd3);

  dla_array #(
    .ArrayRows    (R),
    .ArrayCols    (C),
    .HasDefectPort(HasDefectPort),
    .HasSeu       (HasSeu),
    .FastPath     (FastPath)
  ) u_array (
    .clk_i     (clk_i),
    .rst_ni    (rst_ni),
    .en_i      (seq_stream),
    .act_i     (act),
    .psum_o    (psum),
    .wload_i   (wload),
    .wrow_i    (wrow),
    .wdata_i   (wdata),
    .clear_i   (arr_clear),
    .cfg_we_i  (cfg_we),
    .byp_we_i  (bypass_we),
    .cfg_row_i (req_row),
    .cfg_col_i (req_col),
    .cfg_site_i(req_site[1:0]),
    .cfg_sa0_i (req_sa0),
    .cfg_sa1_i (req_sa1),
    .byp_i     (req_bypass_on),
    .dft_we_i  (dft_we),
    .dft_row_i (dft_row_i),
    .dft_col_i (dft_col_i),
    .dft_site_i(dft_site_i),
    .dft_sa0_i (dft_sa0_i),
    .dft_sa1_i (dft_sa1_i),
    .seu_en_i  (seu_rate_q != 28'd0),
    .seu_key_i (seu_key),
    .seu_tk_i  (seu_tk),
    .seu_t_i   (seu_t),
    .seu_ahead_i(seu_ahead),
    .seu_m_i   (req_m),
    .seu_rate_i(seu_rate_q),
    .nflips_o  (nflips)
  );

  // ---------------------------------------------------------------------------
  // Reply transmitter and the shared CRC
  // ---------------------------------------------------------------------------
  logic            tx_start, tx_done;
  logic [7:0]      tx_status;
  logic [31:0]     tx_len;
  logic            tx_from_acc;
  logic            tx_crc_init, tx_crc_en;
  logic [8*SB-1:0] tx_crc_data;
  logic [CntW-1:0] tx_crc_count;

  dla_reply_tx #(
    .ArrayRows  (R),
    .ArrayCols  (C),
    .WmemBytes  (WmemBytes),
    .BufBytes   (BufBytes),
    .AccWords   (AccWords),
    .StreamBytes(SB),
    .Features   (Features)
  ) u_reply_tx (
    .clk_i       (clk_i),
    .rst_ni      (rst_ni),
    .start_i     (tx_start),
    .status_i    (tx_status),
    .seq_i       (rx_seq),
    .len_i       (tx_len),
    .from_acc_i  (tx_from_acc),
    .info_i      (op == dla_pkg::OpInfo),
    .counters_i  ({flips_q, macs_q, cycles_q}),
    .busy_o      (tx_busy),
    .done_o      (tx_done),
    .acc_re_o    (tx_acc_re),
    .acc_raddr_o (tx_acc_raddr),
    .acc_rdata_i (acc_rdata),
    .crc_i       (crc_q),
    .crc_init_o  (tx_crc_init),
    .crc_en_o    (tx_crc_en),
    .crc_data_o  (tx_crc_data),
    .crc_count_o (tx_crc_count),
    .out_valid_o (out_valid_o),
    .out_data_o  (out_data_o),
    .out_count_o (out_count_o),
    .out_ready_i (out_ready_i)
  );

  // One CRC unit: the receiver's beats, or the transmitter's while it sends.
  logic [15:0] crc_next;

  dla_crc16 #(.Bytes(SB)) u_crc (
    .en_i   (tx_busy ? tx_crc_en : rx_crc_en),
    .crc_i  (crc_q),
    .data_i (tx_busy ? tx_crc_data : rx_crc_data),
    .count_i(tx_busy ? tx_crc_count : rx_crc_count),
    .crc_o  (crc_next)
  );

  assign crc_d = (rx_crc_init || tx_crc_init) ? 16'hFFFF : crc_next;

  // ---------------------------------------------------------------------------
  // Controller FSM
  // ---------------------------------------------------------------------------
  logic [31:0] patch_entry;          // payload[write_src + 0..3]: addr u24, value u8
  logic [23:0] patch_addr;
  logic [7:0]  patch_value;
  logic [31:0] chunk, room;          // WRITE_WEIGHTS: bytes this cycle, room in the word

  assign patch_entry = (state_q == dla_pkg::StPatchScan || state_q == dla_pkg::StPatchApply) ?
                       buf_rdata[31:0] : 32'h0;
  assign patch_addr  = patch_entry[23:0];
  assign patch_value = patch_entry[31:24];

  always_comb begin
    // defaults: hold
    state_d      = state_q;
    seu_rate_d   = seu_rate_q;
    seu_seed_d   = seu_seed_q;
    pass_d       = pass_q;
    cycles_d     = cycles_q;
    macs_d       = macs_q;
    flips_d      = flips_q;
    write_src_d  = write_src_q;
    write_dst_d  = write_dst_q;
    write_left_d = write_left_q;
    crc_ok_d     = crc_ok_q;
    product_d    = product_q;
    mk_d         = mk_q;
    mn_d         = mn_q;
    tiles_d      = tiles_q;
    mkn_d        = mkn_q;
    k_tiles_d    = k_tiles_q;
    n_tiles_d    = n_tiles_q;
    // strobes
    rx_start    = 1'b0;
    mul_start   = 1'b0;
    mul_a       = 32'(req_m);
    mul_b       = req_k;
    seq_start   = 1'b0;
    wmem_waddr  = '0;
    wmem_be     = '0;
    wmem_wdata  = '0;
    arr_clear   = 1'b0;
    cfg_we      = 1'b0;
    bypass_we   = 1'b0;
    tx_start    = 1'b0;
    tx_status   = dla_pkg::StsOk;
    tx_len      = '0;
    tx_from_acc = 1'b0;
    chunk       = '0;
    room        = '0;

    unique case (state_q)
      dla_pkg::StReceive: begin
        if (rx_len_bad) begin
          tx_start  = 1'b1;
          tx_status = dla_pkg::StsBadLength;
        end else if (rx_frame_done) begin
          state_d = dla_pkg::StLatch;
        end
      end

      // ------------------------------------------------------------- check
      dla_pkg::StLatch: begin
        crc_ok_d = (crc_q == rx_crc);
        state_d  = dla_pkg::StTileCount;
      end

      dla_pkg::StTileCount: begin
        k_tiles_d = 16'((17'(req_k) + 17'(R - 1)) >> RowBits);
        n_tiles_d = 16'((17'(req_n) + 17'(C - 1)) >> ColBits);
        state_d   = dla_pkg::StCheck;
        // Only MATMUL needs the products (64 cycles: request checks are not
        // timed by COUNTERS).
        if (op == dla_pkg::OpMatmul) begin
          state_d   = dla_pkg::StMultiply;
          mul_start = 1'b1;
          mul_a     = 32'(req_m);
          mul_b     = req_k;
          product_d = 2'd0;
        end
      end

      dla_pkg::StMultiply: begin
        if (mul_done) begin
          product_d = product_q + 2'd1;
          mul_start = 1'b1;
          unique case (product_q)
            2'd0: begin
              mk_d  = mul_result[31:0];
              mul_a = 32'(req_m);
              mul_b = req_n;
            end
            2'd1: begin
              mn_d  = mul_result[31:0];
              mul_a = 32'(k_tiles_q);
              mul_b = n_tiles_q;
            end
            2'd2: begin
              tiles_d = mul_result[31:0];
              mul_a   = mk_q;
              mul_b   = req_n;
            end
            default: begin
              mkn_d     = mul_result;
              mul_start = 1'b0;
              state_d   = dla_pkg::StCheck;
            end
          endcase
        end
      end

      dla_pkg::StCheck: begin
        // status from dla_req_check; execute an accepted request
        tx_start  = 1'b1;
        tx_status = status;
        if (status == dla_pkg::StsOk) begin
          unique case (op)
            dla_pkg::OpInfo: begin
              tx_len = dla_pkg::RepLenInfo;
            end
            dla_pkg::OpCounters: begin
              tx_len = dla_pkg::RepLenCounters;
            end
            dla_pkg::OpReset: begin
              arr_clear  = 1'b1;
              seu_rate_d = '0;
              seu_seed_d = '0;
              pass_d     = '0;
              cycles_d   = '0;
              macs_d     = '0;
              flips_d    = '0;
            end
            dla_pkg::OpClear: begin
              arr_clear = 1'b1;
            end
            dla_pkg::OpFault: begin
              cfg_we = 1'b1;
            end
            dla_pkg::OpBypass: begin
              bypass_we = 1'b1;
            end
            dla_pkg::OpSeu: begin
              seu_rate_d = req_addr[27:0];
              seu_seed_d = req_seed;
              pass_d     = '0;
            end
            dla_pkg::OpWrite: begin
              if (len != dla_pkg::LenWriteAddr) begin
                tx_start     = 1'b0;
                state_d      = dla_pkg::StWrite;
                write_src_d  = PayloadW'(dla_pkg::LenWriteAddr);
                write_dst_d  = WmemByteW'(req_addr);   // addr + len - 4 <= WmemBytes
                write_left_d = PayloadW'(len - dla_pkg::LenWriteAddr);
              end
            end
            dla_pkg::OpPatch: begin
              if (len != 32'd0) begin
                tx_start    = 1'b0;
                state_d     = dla_pkg::StPatchScan;
                write_src_d = '0;
              end
            end
            dla_pkg::OpMatmul: begin
              tx_start  = 1'b0;
              state_d   = dla_pkg::StMatmul;
              seq_start = 1'b1;
              macs_d    = macs_q + 64'(mkn_q);
            end
            default: ;
          endcase
        end
      end

      // ------------------------------------------------------ weight writes
      dla_pkg::StWrite: begin
        // up to one payload buffer read (PB bytes) into the rest of one wmem word
        room  = 32'(C) - 32'(write_dst_q[ColBits-1:0]);
        chunk = (32'(write_left_q) < room) ? 32'(write_left_q) : room;
        if (chunk > 32'(BufBanks)) begin
          chunk = 32'(BufBanks);
        end
        wmem_waddr = WmemAW'(write_dst_q >> ColBits);
        for (int l = 0; l < C; l++) begin
          if (32'(l) >= 32'(write_dst_q[ColBits-1:0]) &&
              32'(l) - 32'(write_dst_q[ColBits-1:0]) < chunk) begin
            wmem_be[l] = 1'b1;
            wmem_wdata[8*l +: 8] =
                buf_rdata[8*BufBankW'(32'(l) - 32'(write_dst_q[ColBits-1:0])) +: 8];
          end
        end
        write_src_d  = write_src_q + PayloadW'(chunk);
        write_dst_d  = write_dst_q + WmemByteW'(chunk);
        write_left_d = write_left_q - PayloadW'(chunk);
        if (32'(write_left_q) == chunk) begin
          tx_start = 1'b1;
        end
      end

      dla_pkg::StPatchScan: begin
        write_src_d = write_src_q + PayloadW'(dla_pkg::LenPatchEntry);
        if (32'(patch_addr) >= 32'(WmemBytes)) begin
          tx_start  = 1'b1;
          tx_status = dla_pkg::StsOutOfRange;
        end else if (write_src_d == len[PayloadW-1:0]) begin
          state_d     = dla_pkg::StPatchApply;
          write_src_d = '0;
        end
      end

      dla_pkg::StPatchApply: begin
        wmem_waddr = WmemAW'(patch_addr >> ColBits);
        wmem_be[patch_addr[ColBits-1:0]] = 1'b1;
        wmem_wdata  = {C{patch_value}};
        write_src_d = write_src_q + PayloadW'(dla_pkg::LenPatchEntry);
        if (write_src_d == len[PayloadW-1:0]) begin
          tx_start = 1'b1;
        end
      end

      // ------------------------------------------------------------ MATMUL
      dla_pkg::StMatmul: begin
        if (seq_busy) begin            // every cycle here: a pass cycle
          cycles_d = cycles_q + 64'd1;
        end
        // dla_array counts a cycle's flips one cycle later (zero
        // outside streams, complete the cycle after a pass).
        flips_d = flips_q + 64'(nflips);
        if (seq_pass_done) begin
          pass_d = pass_q + 32'd1;
        end
        if (seq_done) begin
          tx_start    = 1'b1;
          tx_len      = mn_q << 2;
          tx_from_acc = 1'b1;
        end
      end

      // ------------------------------------------------------------- reply
      dla_pkg::StReply: begin
        if (tx_done) begin
          state_d  = dla_pkg::StReceive;
          rx_start = 1'b1;
        end
      end

      default: begin
        state_d  = dla_pkg::StReceive;
        rx_start = 1'b1;
      end
    endcase

    if (tx_start) begin
      state_d = dla_pkg::StReply;
    end
  end

  // The controller's payload buffer reads, for the next cycle. In StCheck
  // the first WRITE / PATCH read is issued speculatively; a refused request
  // just ignores it.
  always_comb begin
    ctrl_buf_re    = 1'b0;
    ctrl_buf_raddr = BufAW'(write_src_d);
    unique case (state_q)
      dla_pkg::StCheck: begin
        ctrl_buf_re    = (op == dla_pkg::OpWrite) || (op == dla_pkg::OpPatch);
        ctrl_buf_raddr = (op == dla_pkg::OpWrite) ? BufAW'(dla_pkg::LenWriteAddr) : BufAW'(0);
      end
      dla_pkg::StWrite, dla_pkg::StPatchScan, dla_pkg::StPatchApply: begin
        ctrl_buf_re = 1'b1;
      end
      default: ;
    endcase
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q      <= dla_pkg::StReceive;
      crc_q        <= 16'hFFFF;
      seu_rate_q   <= '0;
      seu_seed_q   <= '0;
      pass_q       <= '0;
      cycles_q     <= '0;
      macs_q       <= '0;
      flips_q      <= '0;
      write_src_q  <= '0;
      write_dst_q  <= '0;
      write_left_q <= '0;
    end else begin
      state_q      <= state_d;
      crc_q        <= crc_d;
      seu_rate_q   <= seu_rate_d;
      seu_seed_q   <= seu_seed_d;
      pass_q       <= pass_d;
      cycles_q     <= cycles_d;
      macs_q       <= macs_d;
      flips_q      <= flips_d;
      write_src_q  <= write_src_d;
      write_dst_q  <= write_dst_d;
      write_left_q <= write_left_d;
    end
  end

  always_ff @(posedge clk_i) begin
    crc_ok_q  <= crc_ok_d;
    product_q <= product_d;
    mk_q      <= mk_d;
    mn_q      <= mn_d;
    tiles_q   <= tiles_d;
    mkn_q     <= mkn_d;
    k_tiles_q <= k_tiles_d;
    n_tiles_q <= n_tiles_d;
  end

endmodule
