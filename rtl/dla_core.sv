// faultloop DLA core: frame receiver, CRC check, command execution, weight
// memory, tile controller, banked accumulators and reply serializer.
// Normative behaviour: docs/protocol.md.
//
// Byte stream ports follow docs/protocol.md section 5 (beats of up to
// StreamBytes bytes, byte 0 in bits 7:0). dla_sim_top exposes them directly.
//
// Dimensions (ArrayRows, ArrayCols, WmemBytes, BufBytes, AccWords,
// StreamBytes) must be powers of two; ArrayRows, ArrayCols >= 2, <= 255;
// AccWords >= 2*ArrayCols; WmemBytes >= 2*ArrayCols;
// BufBytes >= 2*max(ArrayRows, StreamBytes, 4); StreamBytes <= 4*ArrayCols.
//
// Memories (behavioural, no reset; every read is synchronous, so they map to
// block RAM: EBR/SPRAM on an iCE40, BRAM on a Xilinx part):
//   pbuf   PB banks of BufBytes/PB x 8, PB = max(ArrayRows, StreamBytes, 4):
//                             byte a lives in bank a % PB, so one write beat
//                             and any PB consecutive bytes (an activation
//                             row, a patch entry, a weight-row chunk) hit PB
//                             different banks: one write and one read port
//                             per bank. Reads are issued with the next
//                             state's address (pbr_d) and used a cycle later.
//   wmem   WmemBytes/C x 8C   one word = one PE row (layout: protocol.md s3);
//                             single port (writes and reads never share a
//                             cycle), byte enables, synchronous read: SPRAM.
//   acc    C banks of AccWords/C x 32: element a lives in bank a % C, so the
//                             C consecutive results of one output row (and
//                             the words of one reply beat) hit C different
//                             banks: one read and one write port per bank;
//                             reads issued a cycle ahead like pbuf's.
//
// MATMUL timing per pass (must match the COUNTERS formula M + 2R + C):
//   TURN   1 cycle        issue the wmem read of tile row 0, per-pass setup
//   LOAD   R cycles       row i arrives, is written to physical row
//                         (i + rot_r) mod R rotated by rot_c; read row i+1
//   STREAM M + R + C - 1  logical activation row t enters (skewed: physical
//                         row pr delayed pr cycles); bottom outputs are
//                         de-skewed (column pc delayed C-1-pc cycles) so that
//                         in cycle t >= R+C-1 the whole output row
//                         m = t-(R+C-1) is accumulated at once.
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
  localparam int R         = ArrayRows;
  localparam int C         = ArrayCols;
  localparam int SB        = StreamBytes;
  localparam int RB        = $clog2(R);
  localparam int CB        = $clog2(C);
  localparam int WWords    = WmemBytes / C;
  localparam int WAW       = $clog2(WWords);
  localparam int BAW       = $clog2(BufBytes);
  localparam int AAW       = $clog2(AccWords);
  localparam int RdWords   = (SB >= 4) ? SB / 4 : 1;
  localparam int IdleW     = $clog2(IdleTimeout + 1);
  localparam int FlipW     = $clog2(R * C + 1);
  localparam int HdrB      = (SB > 7) ? SB : 7;     // widths of the reply sources
  localparam int SpB       = (SB > 24) ? SB : 24;
  localparam int CrB       = (SB > 2) ? SB : 2;
  localparam int AccB      = (SB > 4 * RdWords) ? SB : 4 * RdWords;

  // Counter widths: a request payload is at most BufBytes (longer ones are
  // refused from the header), a WRITE ends inside wmem (checked before it
  // starts), a reply payload is at most 4*AccWords bytes, a stream pass is
  // M + R + C - 1 < 2^17 cycles. Narrow counters keep the FPGA build small.
  localparam int LW        = BAW + 1;
  localparam int WDW       = $clog2(WmemBytes) + 1;
  localparam int PRW       = (AAW + 3 > 5) ? AAW + 3 : 5;
  localparam int TW        = 17;
  localparam int PB0       = (R > SB) ? R : SB;
  localparam int PB        = (PB0 > 4) ? PB0 : 4;  // pbuf banks
  localparam int PBW       = $clog2(PB);

  // bit0 stuck-at, bit1 bypass, bit2 SEU, bit3 rotation, bit4 defect port
  localparam logic [31:0] Features = {27'h0, HasDefectPort, 1'b1, HasSeu, 2'b11};

  // Opcodes and status codes
  localparam logic [7:0] OpInfo     = 8'h01;
  localparam logic [7:0] OpReset    = 8'h02;
  localparam logic [7:0] OpWrite    = 8'h03;
  localparam logic [7:0] OpPatch    = 8'h04;
  localparam logic [7:0] OpFault    = 8'h05;
  localparam logic [7:0] OpBypass   = 8'h06;
  localparam logic [7:0] OpClear    = 8'h07;
  localparam logic [7:0] OpSeu      = 8'h08;
  localparam logic [7:0] OpMatmul   = 8'h09;
  localparam logic [7:0] OpCounters = 8'h0A;

  localparam logic [7:0] StsOk     = 8'd0;
  localparam logic [7:0] StsBadLen = 8'd3;
  localparam logic [7:0] StsOor    = 8'd4;

  // Main FSM states
  localparam logic [3:0] StHunt   = 4'd0;   // drop bytes until 0xA5
  localparam logic [3:0] StHdr    = 4'd1;   // 7 header bytes
  localparam logic [3:0] StPay    = 4'd2;   // payload into pbuf
  localparam logic [3:0] StCrc    = 4'd3;   // 2 CRC bytes
  localparam logic [3:0] StChk0   = 4'd4;   // latch fields
  localparam logic [3:0] StChk1   = 4'd5;   // tile counts; MATMUL: start the products
  localparam logic [3:0] StMul    = 4'd6;   // MATMUL: four 16-cycle shift-add products
  localparam logic [3:0] StChk3   = 4'd7;   // decide, execute simple ops
  localparam logic [3:0] StWrite  = 4'd8;   // WRITE_WEIGHTS, one wmem word per cycle
  localparam logic [3:0] StPscan  = 4'd9;   // PATCH_WEIGHTS range scan
  localparam logic [3:0] StPapply = 4'd10;  // PATCH_WEIGHTS apply
  localparam logic [3:0] StTurn   = 4'd11;  // MATMUL pass: turnaround
  localparam logic [3:0] StLoad   = 4'd12;  // MATMUL pass: weight load
  localparam logic [3:0] StStream = 4'd13;  // MATMUL pass: stream and drain
  localparam logic [3:0] StReply  = 4'd14;  // reply serializer

  localparam logic [1:0] SegSync = 2'd0;
  localparam logic [1:0] SegHdr  = 2'd1;
  localparam logic [1:0] SegPay  = 2'd2;
  localparam logic [1:0] SegCrc  = 2'd3;

  // ---------------------------------------------------------------------------
  // Registers
  // ---------------------------------------------------------------------------
  // control (reset)
  logic [3:0]       st_d, st_q;
  logic [1:0]       seg_d, seg_q;
  logic [2:0]       hcnt_d, hcnt_q;
  logic [IdleW-1:0] idle_d, idle_q;
  logic [LW-1:0]    ptr_d, ptr_q;          // rx payload bytes received / CRC bytes
  logic [15:0]      crc_d, crc_q;
  logic [27:0]      rate_d, rate_q;
  logic [31:0]      seed_d, seed_q;
  logic [31:0]      p_d, p_q;
  logic [63:0]      cycles_d, cycles_q;
  logic [63:0]      macs_d, macs_q;
  logic [63:0]      flips_d, flips_q;
  logic [3:0]       hrem_d, hrem_q;        // reply header / CRC bytes left
  logic [PRW-1:0]   prem_d, prem_q;        // reply payload bytes left
  logic             pacc_d, pacc_q;        // reply payload from the accumulators
  logic [AAW+1:0]   rptr_d, rptr_q;        // reply payload byte pointer
  logic [15:0]      kt_d, kt_q, nt_d, nt_q;
  logic [RB-1:0]    lcnt_d, lcnt_q;
  logic [TW-1:0]    t_d, t_q;              // stream cycle
  logic [31:0]      tk_d, tk_q;            // t * dla_pkg::HashK2
  logic [WAW-1:0]   wp_d, wp_q;            // wmem word of the current tile
  logic [BAW-1:0]   aptr_d, aptr_q;        // pbuf offset of activation row t
  logic [AAW-1:0]   accp_d, accp_q;        // acc element of output row m, column nt*C
  logic [16:0]      krem_d, krem_q;        // K - kt*R
  logic [16:0]      nrem_d, nrem_q;        // N - nt*C
  logic [LW-1:0]    wsrc_d, wsrc_q;        // WRITE_WEIGHTS / PATCH source offset
  logic [WDW-1:0]   wdst_d, wdst_q;        // WRITE_WEIGHTS destination
  logic [LW-1:0]    wrem_d, wrem_q;        // WRITE_WEIGHTS bytes left
  // datapath (no reset)
  logic [55:0]      hdr_d, hdr_q;          // op, seq, len of the request
  logic [15:0]      rxcrc_d, rxcrc_q;
  logic             crc_ok_d, crc_ok_q;
  logic [95:0]      fld_d, fld_q;          // payload bytes 0..11
  logic [31:0]      mk_d, mk_q, mn_d, mn_q, tiles_d, tiles_q;
  logic [15:0]      ktn_d, ktn_q, ntn_d, ntn_q;
  logic [47:0]      mkn_d, mkn_q;
  logic [31:0]      key_d, key_q;          // seed ^ p * dla_pkg::HashK1 for the pass
  logic [55:0]      hout_d, hout_q;        // reply header bytes still to send
  logic             rinfo_d, rinfo_q;      // small reply payload: INFO (else COUNTERS)
  logic [1:0]       mul_s_d, mul_s_q;      // product: 0 m*k, 1 m*n, 2 KT*NT, 3 m*k*n

  // Request fields
  logic [7:0]  op;
  logic [31:0] len;
  logic [31:0] f_u32a, f_u32b, f_sa0, f_sa1;
  logic [7:0]  f_row, f_col, f_site;
  logic [15:0] f_m, f_k, f_n;
  logic [7:0]  f_rotr, f_rotc;

  assign op     = hdr_q[7:0];
  assign len    = hdr_q[55:24];
  assign f_u32a = fld_q[31:0];
  assign f_u32b = fld_q[63:32];
  assign f_row  = fld_q[7:0];
  assign f_col  = fld_q[15:8];
  assign f_site = fld_q[23:16];
  assign f_sa0  = fld_q[55:24];
  assign f_sa1  = fld_q[87:56];
  assign f_m    = fld_q[47:32];
  assign f_k    = fld_q[63:48];
  assign f_n    = fld_q[79:64];
  assign f_rotr = fld_q[87:80];
  assign f_rotc = fld_q[95:88];

  // ---------------------------------------------------------------------------
  // Memories
  // ---------------------------------------------------------------------------
  logic [SB-1:0]   pb_we;                  // pbuf write lanes (ib_data_q byte i)
  logic            pb_re;                  // read pbuf at pbr_d for the next cycle
  logic [BAW-1:0]  pbr_d;                  // byte address of read lane 0
  logic [8*PB-1:0] pb_lane;                // byte pbr + i of the last read in lane i
  logic [8*PB-1:0] unused_pb_bank;
  logic [PBW*PB-1:0] unused_pb_wlane;
  logic            wm_re;
  logic [WAW-1:0]  wm_raddr, wm_waddr;
  logic [C-1:0]    wm_be;
  logic [8*C-1:0]  wm_wdata, wm_rdata_q;

  dla_banked_ram #(
    .Width    (8),
    .Depth    (BufBytes),
    .Banks    (PB),
    .BankOrder(1'b0)
  ) u_pbuf (
    .clk_i       (clk_i),
    .we_i        (PB'(pb_we)),
    .waddr_i     (ptr_q[BAW-1:0]),
    .wdata_i     ((8*PB)'(ib_data_q)),
    .wlane_o     (unused_pb_wlane),
    .re_i        (pb_re),
    .raddr_i     (pbr_d),
    .lanes_en_i  (1'b1),
    .rdata_bank_o(unused_pb_bank),
    .rdata_o     (pb_lane)
  );

  // Writes (WRITE/PATCH) and reads (MATMUL) never share a cycle: one
  // address. The write enables are gated with the read anyway, which makes
  // that visible to synthesis: yosys merges the ports into the single port
  // of an iCE40 SPRAM only when it can prove them exclusive.
  dla_ram_1rw #(
    .Bytes(C),
    .Depth(WWords)
  ) u_wmem (
    .clk_i  (clk_i),
    .addr_i (wm_re ? wm_raddr : wm_waddr),
    .be_i   (wm_re ? '0 : wm_be),
    .wdata_i(wm_wdata),
    .re_i   (wm_re),
    .rdata_o(wm_rdata_q)
  );

  // ---------------------------------------------------------------------------
  // Stream handshakes
  //
  // Both directions are registered at the port, so no logic of the core
  // depends combinationally on a port input (which also keeps the Verilated
  // model's input-combinational region tiny):
  //  * in: a beat accepted at cycle t is held in ib_* and consumed by the
  //    receiver at t+1. in_ready_o/in_max_o are therefore computed from the
  //    receiver's NEXT state (st_d, ptr_d, len of hdr_d); the beat is always
  //    consumed at t+1 (no idle timeout can fire in a cycle with a beat).
  //  * out: a 2-entry FIFO between the reply serializer and the port.
  // ---------------------------------------------------------------------------
  logic            rx_fire, tx_fire;
  logic            ib_valid_q;               // control
  logic [8*SB-1:0] ib_data_q;                // datapath
  logic [CntW-1:0] ib_count_q;
  logic [15:0]     in_lo2;                   // first two bytes of the beat
  logic            srl_valid, srl_ready;
  logic [8*SB-1:0] srl_data;
  logic [CntW-1:0] srl_count;

  if (SB >= 2) begin : g_in_wide
    assign in_lo2 = ib_data_q[15:0];
  end else begin : g_in_byte
    assign in_lo2 = {8'h00, ib_data_q[7:0]};
  end

  // Receiver acceptance as a function of the receiver state.
  function automatic logic [CntW:0] rx_accept(input logic [3:0] st, input logic [31:0] left,
                                              input logic [31:0] ptr);
    // {ready, max}
    rx_accept = '0;
    case (st)
      StHunt, StHdr: rx_accept = {1'b1, CntW'(1)};
      StPay:         rx_accept = {1'b1, (left >= 32'(SB)) ? CntW'(SB) : CntW'(left)};
      StCrc:         rx_accept = {1'b1, (SB >= 2 && ptr == 32'd0) ? CntW'(2) : CntW'(1)};
      default:       rx_accept = '0;
    endcase
  endfunction

  logic [CntW:0] acc_next;
  // left is only used in StPay, where len <= BufBytes
  logic [LW-1:0] rx_left;
  assign rx_left    = hdr_d[24 +: LW] - ptr_d;
  assign acc_next   = rx_accept(st_d, 32'(rx_left), 32'(ptr_d));
  assign in_ready_o = acc_next[CntW];
  assign in_max_o   = acc_next[CntW-1:0];

  assign rx_fire = ib_valid_q;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      ib_valid_q <= 1'b0;
    end else begin
      ib_valid_q <= in_valid_i && in_ready_o;
    end
  end

  always_ff @(posedge clk_i) begin
    if (in_valid_i && in_ready_o) begin
      ib_data_q  <= in_data_i;
      ib_count_q <= in_count_i;
    end
  end

  // Reply FIFO (2 entries).
  logic [1:0]      ocnt_d, ocnt_q;
  logic [8*SB-1:0] o0_data_d, o0_data_q, o1_data_d, o1_data_q;
  logic [CntW-1:0] o0_cnt_d, o0_cnt_q, o1_cnt_d, o1_cnt_q;
  logic            pop;

  assign srl_ready   = (ocnt_q != 2'd2);
  assign tx_fire     = srl_valid && srl_ready;
  assign out_valid_o = (ocnt_q != 2'd0);
  assign out_data_o  = o0_data_q;
  assign out_count_o = o0_cnt_q;
  assign pop         = out_valid_o && out_ready_i;

  always_comb begin
    ocnt_d    = ocnt_q;
    o0_data_d = o0_data_q;
    o0_cnt_d  = o0_cnt_q;
    o1_data_d = o1_data_q;
    o1_cnt_d  = o1_cnt_q;
    if (pop) begin
      o0_data_d = o1_data_q;
      o0_cnt_d  = o1_cnt_q;
      ocnt_d    = ocnt_q - 2'd1;
    end
    if (tx_fire) begin
      if (ocnt_d == 2'd0) begin
        o0_data_d = srl_data;
        o0_cnt_d  = srl_count;
      end else begin
        o1_data_d = srl_data;
        o1_cnt_d  = srl_count;
      end
      ocnt_d = ocnt_d + 2'd1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      ocnt_q <= '0;
    end else begin
      ocnt_q <= ocnt_d;
    end
  end

  always_ff @(posedge clk_i) begin
    o0_data_q <= o0_data_d;
    o0_cnt_q  <= o0_cnt_d;
    o1_data_q <= o1_data_d;
    o1_cnt_q  <= o1_cnt_d;
  end

  // ---------------------------------------------------------------------------
  // Reply beat
  // ---------------------------------------------------------------------------
  logic [32*RdWords-1:0] acc_lane_rd;       // reply: acc words rptr/4 + 0..RdWords-1
  logic [8*HdrB-1:0]     hdr_x;
  logic [8*SpB-1:0]      sp_x;
  logic [8*CrB-1:0]      crc_x;
  logic [8*AccB-1:0]     acc_x;

  always_comb begin
    srl_valid = 1'b0;
    srl_data  = '0;
    srl_count = '0;
    hdr_x       = '0;
    sp_x        = '0;
    crc_x       = '0;
    acc_x       = '0;
    if (st_q == StReply) begin
      srl_valid = 1'b1;
      case (seg_q)
        SegSync: begin
          srl_data[7:0] = 8'h5A;
          srl_count     = CntW'(1);
        end
        SegHdr: begin
          hdr_x[55:0] = hout_q;
          srl_data  = hdr_x[8*SB-1:0];
          srl_count = (32'(hrem_q) >= 32'(SB)) ? CntW'(SB) : CntW'(hrem_q);
        end
        SegPay: begin
          srl_count = (32'(prem_q) >= 32'(SB)) ? CntW'(SB) : CntW'(prem_q);
          if (pacc_q) begin
            acc_x[32*RdWords-1:0] = acc_lane_rd[32*RdWords-1:0];
            acc_x      = acc_x >> (32'(rptr_q[1:0]) << 3);
            srl_data = acc_x[8*SB-1:0];
          end else begin
            // INFO and COUNTERS replies straight from their sources (the
            // counters do not move outside MATMUL), byte rptr onwards
            sp_x[191:0] = rinfo_q ? {32'h0, Features, 32'(AccWords), 32'(BufBytes),
                                     32'(WmemBytes), 8'(C), 8'(R), 8'h01, 8'h01}
                                  : {flips_q, macs_q, cycles_q};
            sp_x      = sp_x >> (8 * 32'(rptr_q));
            srl_data  = sp_x[8*SB-1:0];
          end
        end
        default: begin  // SegCrc
          crc_x[15:0] = (hrem_q == 4'd2) ? crc_q : {8'h00, crc_q[15:8]};
          srl_data  = crc_x[8*SB-1:0];
          srl_count = (32'(hrem_q) >= 32'(SB)) ? CntW'(SB) : CntW'(hrem_q);
        end
      endcase
    end
  end

  // ---------------------------------------------------------------------------
  // CRC (one unit: receive and reply never overlap)
  // ---------------------------------------------------------------------------
  logic            crc_en;
  logic [8*SB-1:0] crc_data;
  logic [CntW-1:0] crc_cnt;
  logic [15:0]     crc_next;

  always_comb begin
    crc_en   = 1'b0;
    crc_data = ib_data_q;
    crc_cnt  = ib_count_q;
    if (st_q == StReply) begin
      crc_en   = tx_fire && (seg_q == SegHdr || seg_q == SegPay);
      crc_data = srl_data;
      crc_cnt  = srl_count;
    end else begin
      crc_en   = rx_fire && (st_q == StHdr || st_q == StPay);
    end
  end

  dla_crc16 #(.Bytes(SB)) u_crc (
    .en_i   (crc_en),
    .crc_i  (crc_q),
    .data_i (crc_data),
    .count_i(crc_cnt),
    .crc_o  (crc_next)
  );

  // ---------------------------------------------------------------------------
  // Array and its feeds
  // ---------------------------------------------------------------------------
  logic             arr_en;
  logic [8*R-1:0]   act_log, act_phys, act_skew;
  logic [32*C-1:0]  psum_bot, psum_dsk;
  logic             wload;
  logic [7:0]       wrow;
  logic [8*C-1:0]   wdata_phys;
  logic             arr_clear, cfg_we, byp_we;
  logic [FlipW-1:0] nflips;
  logic             dft_we;

  assign arr_en = (st_q == StStream);

  // Logical activation row t (0 when t >= M or k >= K), rotated onto the
  // physical rows.
  always_comb begin
    logic [RB-1:0] lr;
    act_log  = '0;
    act_phys = '0;
    lr       = '0;
    if (arr_en) begin
      if (t_q < TW'(f_m)) begin
        for (int r = 0; r < R; r++) begin
          if (17'(r) < krem_q) begin
            act_log[8*r +: 8] = pb_lane[8*r +: 8];
          end
        end
      end
      for (int pr = 0; pr < R; pr++) begin
        lr = RB'(pr) - f_rotr[RB-1:0];
        act_phys[8*pr +: 8] = act_log[8*lr +: 8];
      end
    end
  end

  // Skew: physical row pr delayed by pr cycles (row 0 direct); de-skew:
  // bottom output of physical column pc delayed by C-1-pc cycles. Each delay
  // line is a circular buffer with a shared push pointer: the value pushed at
  // push n is read back at push n + delay (one write and one read per line
  // and cycle instead of shifting every stage).
  logic [RB-1:0] skp_d, skp_q;
  logic [CB-1:0] dsp_d, dsp_q;

  assign skp_d = arr_en ? skp_q + RB'(1) : skp_q;
  assign dsp_d = arr_en ? dsp_q + CB'(1) : dsp_q;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      skp_q <= '0;
      dsp_q <= '0;
    end else begin
      skp_q <= skp_d;
      dsp_q <= dsp_d;
    end
  end

  assign act_skew[7:0] = act_phys[7:0];
  for (genvar pr = 1; pr < R; pr++) begin : g_skew
    logic [7:0] mem_q [R];
    always_ff @(posedge clk_i) begin
      if (arr_en) begin
        mem_q[skp_q] <= act_phys[8*pr +: 8];
      end
    end
    assign act_skew[8*pr +: 8] = mem_q[skp_q - RB'(pr)];
  end

  assign psum_dsk[32*(C-1) +: 32] = psum_bot[32*(C-1) +: 32];
  for (genvar pc = 0; pc < C - 1; pc++) begin : g_dskew
    logic [31:0] mem_q [C];
    always_ff @(posedge clk_i) begin
      if (arr_en) begin
        mem_q[dsp_q] <= psum_bot[32*pc +: 32];
      end
    end
    assign psum_dsk[32*pc +: 32] = mem_q[dsp_q - CB'(C - 1 - pc)];
  end

  // Weight tile row lcnt, rotated by rot_c onto the physical columns.
  always_comb begin
    logic [CB-1:0] lc;
    wdata_phys = '0;
    wrow       = '0;
    lc         = '0;
    if (wload) begin
      wrow = 8'(RB'(lcnt_q + f_rotr[RB-1:0]));
      for (int pc = 0; pc < C; pc++) begin
        lc = CB'(pc) - f_rotc[CB-1:0];
        wdata_phys[8*pc +: 8] = wm_rdata_q[8*lc +: 8];
      end
    end
  end

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
    .en_i      (arr_en),
    .act_i     (act_skew),
    .psum_o    (psum_bot),
    .wload_i   (wload),
    .wrow_i    (wrow),
    .wdata_i   (wdata_phys),
    .clear_i   (arr_clear),
    .cfg_we_i  (cfg_we),
    .byp_we_i  (byp_we),
    .cfg_row_i (f_row),
    .cfg_col_i (f_col),
    .cfg_site_i(f_site[1:0]),
    .cfg_sa0_i (f_sa0),
    .cfg_sa1_i (f_sa1),
    .byp_i     (f_site[0]),
    .dft_we_i  (dft_we),
    .dft_row_i (dft_row_i),
    .dft_col_i (dft_col_i),
    .dft_site_i(dft_site_i),
    .dft_sa0_i (dft_sa0_i),
    .dft_sa1_i (dft_sa1_i),
    .seu_en_i  (rate_q != 28'd0),
    .seu_key_i (key_q),
    .seu_tk_i  (tk_q),
    .seu_t_i   (32'(t_q)),
    .seu_m_i   (f_m),
    .seu_rate_i(rate_q),
    .nflips_o  (nflips)
  );

  // ---------------------------------------------------------------------------
  // Banked accumulators
  // ---------------------------------------------------------------------------
  // Writes go to the elements accp_q + c of the output row in this cycle;
  // reads are issued with the next cycle's element (arb_d: accp_d while
  // loading and streaming, the reply pointer while replying) and used a
  // cycle later. A row's read never meets a same-cycle write of the same
  // element: while streaming the read row is m+1 and the written lanes
  // c < nrem <= N of row m end before it; the reply reads start after the
  // last write, in its sync cycle, two beats before the first payload byte.
  //
  // Bank b holds element base + ((b - base) mod C) of the C elements from
  // base: the bank row of base, or the next row when b < base mod C. In a
  // stream cycle bank b accumulates logical column (b - accp_q) mod C of
  // output row m, which sits on physical column (that + rot_c) mod C; its
  // read data (issued with the same element a cycle ahead) is its own old
  // value, so no lane rotation sits between the banks and the adders.
  logic            acc_wr;                 // accumulate this cycle (row m valid)
  logic            acc_re;
  logic [AAW-1:0]  arb_d;                  // element of read lane 0
  logic [C-1:0]    acc_we;                 // per bank
  logic [32*C-1:0] acc_wdata;              // per bank
  logic [CB*C-1:0] acc_wlane;              // logical column written by bank b
  logic [32*C-1:0] bank_rdata_q;           // per bank

  assign acc_wr = arr_en && (32'(t_q) >= 32'(R + C - 1));

  for (genvar b = 0; b < C; b++) begin : g_acc_bank
    logic [CB-1:0] wl, pc;                 // logical column written here, its physical column

    assign wl = acc_wlane[CB*b +: CB];
    assign pc = wl + f_rotc[CB-1:0];
    assign acc_we[b] = acc_wr && (17'(wl) < nrem_q);
    assign acc_wdata[32*b +: 32] =
        psum_dsk[32*pc +: 32] + ((kt_q != 16'd0) ? bank_rdata_q[32*b +: 32] : 32'h0);
  end

  // Reply lane c (c < RdWords) reads bank (read bank + c) mod C.
  dla_banked_ram #(
    .Width    (32),
    .Depth    (AccWords),
    .Banks    (C),
    .ReadLanes(RdWords),
    .BankOrder(1'b1)
  ) u_acc (
    .clk_i       (clk_i),
    .we_i        (acc_we),
    .waddr_i     (accp_q),
    .wdata_i     (acc_wdata),
    .wlane_o     (acc_wlane),
    .re_i        (acc_re),
    .raddr_i     (arb_d),
    .lanes_en_i  (st_q == StReply),
    .rdata_bank_o(bank_rdata_q),
    .rdata_o     (acc_lane_rd)
  );

  // ---------------------------------------------------------------------------
  // Main FSM
  // ---------------------------------------------------------------------------
  logic        rep_go;
  logic [7:0]  rep_sts;
  logic [31:0] rep_len;
  logic        rep_acc;
  logic [7:0]  pb0, pb1, pb2, pb3;         // pbuf[wsrc + 0..3]
  logic [23:0] patch_addr;
  logic [31:0] nb, room;
  logic [7:0]  sts;
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
    .en_i      (st_q == StChk3),
    .crc_ok_i  (crc_ok_q),
    .op_i      (op),
    .len_i     (len),
    .addr_i    (f_u32a),
    .row_i     (f_row),
    .col_i     (f_col),
    .site_i    (f_site),
    .sa0_i     (f_sa0),
    .sa1_i     (f_sa1),
    .m_i       (f_m),
    .k_i       (f_k),
    .n_i       (f_n),
    .rot_rows_i(f_rotr),
    .rot_cols_i(f_rotc),
    .mk_i      (mk_q),
    .mn_i      (mn_q),
    .tiles_i   (tiles_q),
    .status_o  (sts)
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

  always_comb begin
    pb0 = '0;
    pb1 = '0;
    pb2 = '0;
    pb3 = '0;
    if (st_q == StPscan || st_q == StPapply) begin
      pb0 = pb_lane[7:0];
      pb1 = pb_lane[15:8];
      pb2 = pb_lane[23:16];
      pb3 = pb_lane[31:24];
    end
  end
  assign patch_addr = {pb2, pb1, pb0};

  always_comb begin
    // defaults: hold
    st_d     = st_q;
    seg_d    = seg_q;
    hcnt_d   = hcnt_q;
    idle_d   = idle_q;
    ptr_d    = ptr_q;
    crc_d    = crc_q;
    rate_d   = rate_q;
    seed_d   = seed_q;
    p_d      = p_q;
    cycles_d = cycles_q;
    macs_d   = macs_q;
    flips_d  = flips_q;
    hrem_d   = hrem_q;
    prem_d   = prem_q;
    pacc_d   = pacc_q;
    rptr_d   = rptr_q;
    kt_d     = kt_q;
    nt_d     = nt_q;
    lcnt_d   = lcnt_q;
    t_d      = t_q;
    tk_d     = tk_q;
    wp_d     = wp_q;
    aptr_d   = aptr_q;
    accp_d   = accp_q;
    krem_d   = krem_q;
    nrem_d   = nrem_q;
    wsrc_d   = wsrc_q;
    wdst_d   = wdst_q;
    wrem_d   = wrem_q;
    hdr_d    = hdr_q;
    rxcrc_d  = rxcrc_q;
    crc_ok_d = crc_ok_q;
    fld_d    = fld_q;
    mk_d     = mk_q;
    mn_d     = mn_q;
    tiles_d  = tiles_q;
    ktn_d    = ktn_q;
    ntn_d    = ntn_q;
    mkn_d    = mkn_q;
    key_d    = key_q;
    hout_d   = hout_q;
    rinfo_d  = rinfo_q;
    mul_s_d  = mul_s_q;
    // strobes
    pb_we     = '0;
    wm_re     = 1'b0;
    wm_raddr  = wp_q;
    wm_waddr  = '0;
    wm_be     = '0;
    wm_wdata  = '0;
    wload     = 1'b0;
    arr_clear = 1'b0;
    cfg_we    = 1'b0;
    byp_we    = 1'b0;
    rep_go    = 1'b0;
    rep_sts   = StsOk;
    rep_len   = '0;
    rep_acc   = 1'b0;
    mul_start  = 1'b0;
    mul_a      = 32'(f_m);
    mul_b      = f_k;
    nb         = '0;
    room       = '0;

    case (st_q)
      // ----------------------------------------------------------- receive
      StHunt: begin
        if (rx_fire && ib_data_q[7:0] == 8'hA5) begin
          st_d   = StHdr;
          hcnt_d = '0;
          idle_d = '0;
          crc_d  = 16'hFFFF;
        end
      end

      StHdr, StPay, StCrc: begin
        if (!rx_fire) begin
          idle_d = idle_q + IdleW'(1);
          if (idle_q == IdleW'(IdleTimeout - 1)) begin
            st_d = StHunt;      // drop the partial frame silently
          end
        end else begin
          idle_d = '0;
          if (st_q == StHdr) begin
            crc_d  = crc_next;
            hdr_d  = {ib_data_q[7:0], hdr_q[55:8]};
            hcnt_d = hcnt_q + 3'd1;
            if (hcnt_q == 3'd6) begin
              ptr_d = '0;
              if (hdr_d[55:24] > 32'(BufBytes)) begin
                rep_go  = 1'b1;
                rep_sts = StsBadLen;
              end else if (hdr_d[55:24] == 32'd0) begin
                st_d = StCrc;
              end else begin
                st_d = StPay;
              end
            end
          end else if (st_q == StPay) begin
            crc_d = crc_next;
            for (int i = 0; i < SB; i++) begin
              pb_we[i] = (32'(i) < 32'(ib_count_q));
              // payload bytes 0..11 are the fields of every request
              if (pb_we[i] && 32'(ptr_q) + 32'(i) < 32'd12) begin
                fld_d[8*(ptr_q[3:0] + 4'(i)) +: 8] = ib_data_q[8*i +: 8];
              end
            end
            ptr_d = ptr_q + LW'(ib_count_q);
            if (ptr_d == len[LW-1:0]) begin
              ptr_d = '0;
              st_d  = StCrc;
            end
          end else begin  // StCrc
            if (ptr_q == LW'(0)) begin
              rxcrc_d[7:0] = in_lo2[7:0];
              if (ib_count_q == CntW'(2)) begin
                rxcrc_d[15:8] = in_lo2[15:8];
              end
            end else begin
              rxcrc_d[15:8] = in_lo2[7:0];
            end
            ptr_d = ptr_q + LW'(ib_count_q);
            if (ptr_d == LW'(2)) begin
              st_d = StChk0;
            end
          end
        end
      end

      // ------------------------------------------------------------- check
      StChk0: begin
        crc_ok_d = (crc_q == rxcrc_q);
        st_d = StChk1;
      end

      StChk1: begin
        ktn_d = 16'((17'(f_k) + 17'(R - 1)) >> RB);
        ntn_d = 16'((17'(f_n) + 17'(C - 1)) >> CB);
        st_d  = StChk3;
        // Only MATMUL needs the products. One shift-add multiplier makes
        // them in 64 cycles (request checks are not timed by COUNTERS); four
        // parallel multipliers cost more LUTs than a small FPGA has.
        if (op == OpMatmul) begin
          st_d      = StMul;
          mul_start = 1'b1;
          mul_a     = 32'(f_m);
          mul_b     = f_k;
          mul_s_d   = 2'd0;
        end
      end

      StMul: begin
        if (mul_done) begin
          mul_s_d   = mul_s_q + 2'd1;
          mul_start = 1'b1;
          case (mul_s_q)
            2'd0: begin
              mk_d  = mul_result[31:0];
              mul_a = 32'(f_m);
              mul_b = f_n;
            end
            2'd1: begin
              mn_d  = mul_result[31:0];
              mul_a = 32'(ktn_q);
              mul_b = ntn_q;
            end
            2'd2: begin
              tiles_d = mul_result[31:0];
              mul_a   = mk_q;
              mul_b   = f_n;
            end
            default: begin
              mkn_d     = mul_result;
              mul_start = 1'b0;
              st_d      = StChk3;
            end
          endcase
        end
      end

      StChk3: begin
        // status from dla_req_check
        rep_go  = 1'b1;
        rep_sts = sts;
        if (sts == StsOk) begin
          case (op)
            OpInfo: begin
              rep_len = 32'd20;
              rinfo_d = 1'b1;
            end
            OpCounters: begin
              rep_len = 32'd24;
              rinfo_d = 1'b0;
            end
            OpReset: begin
              arr_clear = 1'b1;
              rate_d    = '0;
              seed_d    = '0;
              p_d       = '0;
              cycles_d  = '0;
              macs_d    = '0;
              flips_d   = '0;
            end
            OpClear: begin
              arr_clear = 1'b1;
            end
            OpFault: begin
              cfg_we = 1'b1;
            end
            OpBypass: begin
              byp_we = 1'b1;
            end
            OpSeu: begin
              rate_d = f_u32a[27:0];
              seed_d = f_u32b;
              p_d    = '0;
            end
            OpWrite: begin
              if (len != 32'd4) begin
                rep_go = 1'b0;
                st_d   = StWrite;
                wsrc_d = LW'(4);
                wdst_d = WDW'(f_u32a);     // addr + len - 4 <= WmemBytes
                wrem_d = LW'(len - 32'd4);
              end
            end
            OpPatch: begin
              if (len != 32'd0) begin
                rep_go = 1'b0;
                st_d   = StPscan;
                wsrc_d = '0;
              end
            end
            OpMatmul: begin
              rep_go = 1'b0;
              st_d   = StTurn;
              macs_d = macs_q + 64'(mkn_q);
              kt_d   = '0;
              nt_d   = '0;
              wp_d   = WAW'(f_u32a >> CB);
            end
            default: ;
          endcase
        end
      end

      // ------------------------------------------------------ weight writes
      StWrite: begin
        // up to one pbuf read (PB bytes) into the rest of one wmem word
        room = 32'(C) - 32'(wdst_q[CB-1:0]);
        nb   = (32'(wrem_q) < room) ? 32'(wrem_q) : room;
        if (nb > 32'(PB)) begin
          nb = 32'(PB);
        end
        wm_waddr = WAW'(wdst_q >> CB);
        for (int l = 0; l < C; l++) begin
          if (32'(l) >= 32'(wdst_q[CB-1:0]) && 32'(l) - 32'(wdst_q[CB-1:0]) < nb) begin
            wm_be[l] = 1'b1;
            wm_wdata[8*l +: 8] = pb_lane[8*PBW'(32'(l) - 32'(wdst_q[CB-1:0])) +: 8];
          end
        end
        wsrc_d = wsrc_q + LW'(nb);
        wdst_d = wdst_q + WDW'(nb);
        wrem_d = wrem_q - LW'(nb);
        if (32'(wrem_q) == nb) begin
          rep_go = 1'b1;
        end
      end

      StPscan: begin
        wsrc_d = wsrc_q + LW'(4);
        if (32'(patch_addr) >= 32'(WmemBytes)) begin
          rep_go  = 1'b1;
          rep_sts = StsOor;
        end else if (wsrc_d == len[LW-1:0]) begin
          st_d   = StPapply;
          wsrc_d = '0;
        end
      end

      StPapply: begin
        wm_waddr = WAW'(patch_addr >> CB);
        wm_be[patch_addr[CB-1:0]] = 1'b1;
        wm_wdata = {C{pb3}};
        wsrc_d = wsrc_q + LW'(4);
        if (wsrc_d == len[LW-1:0]) begin
          rep_go = 1'b1;
        end
      end

      // ------------------------------------------------------------ MATMUL
      StTurn: begin
        cycles_d = cycles_q + 64'd1;
        wm_re    = 1'b1;
        wm_raddr = wp_q;
        key_d    = seed_q ^ (p_q * dla_pkg::HashK1);
        t_d      = '0;
        tk_d     = '0;
        lcnt_d   = '0;
        krem_d   = 17'(f_k) - (17'(kt_q) << RB);
        nrem_d   = 17'(f_n) - (17'(nt_q) << CB);
        aptr_d   = BAW'(14) + BAW'(32'(kt_q) << RB);
        accp_d   = AAW'(32'(nt_q) << CB);
        st_d     = StLoad;
      end

      StLoad: begin
        cycles_d = cycles_q + 64'd1;
        wload    = 1'b1;
        wm_re    = 1'b1;
        wm_raddr = wp_q + WAW'(lcnt_q) + WAW'(1);
        lcnt_d   = lcnt_q + RB'(1);
        if (lcnt_q == RB'(R - 1)) begin
          st_d = StStream;
        end
      end

      StStream: begin
        cycles_d = cycles_q + 64'd1;
        flips_d  = flips_q + 64'(nflips);
        t_d      = t_q + TW'(1);
        tk_d     = tk_q + dla_pkg::HashK2;
        if (t_q < TW'(f_m)) begin
          aptr_d = aptr_q + BAW'(f_k);
        end
        if (acc_wr) begin
          accp_d = accp_q + AAW'(f_n);
        end
        if (32'(t_q) == 32'(f_m) + 32'(R + C - 2)) begin
          // end of pass
          p_d  = p_q + 32'd1;
          wp_d = wp_q + WAW'(R);
          st_d = StTurn;
          if (kt_q == ktn_q - 16'd1) begin
            kt_d = '0;
            nt_d = nt_q + 16'd1;
            if (nt_q == ntn_q - 16'd1) begin
              rep_go  = 1'b1;
              rep_len = mn_q << 2;
              rep_acc = 1'b1;
            end
          end else begin
            kt_d = kt_q + 16'd1;
          end
        end
      end

      // ------------------------------------------------------------- reply
      StReply: begin
        if (tx_fire) begin
          case (seg_q)
            SegSync: begin
              seg_d  = SegHdr;
              hrem_d = 4'd7;
              crc_d  = 16'hFFFF;
            end
            SegHdr: begin
              crc_d  = crc_next;
              hout_d = hout_q >> (8 * 32'(srl_count));
              hrem_d = hrem_q - 4'(srl_count);
              if (hrem_d == 4'd0) begin
                if (prem_q != PRW'(0)) begin
                  seg_d = SegPay;
                end else begin
                  seg_d  = SegCrc;
                  hrem_d = 4'd2;
                end
              end
            end
            SegPay: begin
              crc_d  = crc_next;
              rptr_d = rptr_q + (AAW+2)'(srl_count);
              prem_d = prem_q - PRW'(srl_count);
              if (prem_d == PRW'(0)) begin
                seg_d  = SegCrc;
                hrem_d = 4'd2;
              end
            end
            default: begin  // SegCrc
              hrem_d = hrem_q - 4'(srl_count);
              if (hrem_d == 4'd0) begin
                st_d = StHunt;
              end
            end
          endcase
        end
      end

      default: st_d = StHunt;
    endcase

    if (rep_go) begin
      st_d   = StReply;
      seg_d  = SegSync;
      hout_d = {rep_len, hdr_d[23:8], rep_sts};
      prem_d = PRW'(rep_len);              // <= 4*AccWords
      pacc_d = rep_acc;
      rptr_d = '0;
    end
  end

  // Block-RAM reads for the next cycle. Selected by the current state (not
  // st_d, which sits behind the request checks: that path would set Fmax)
  // and addressed with the next pointer values. In StChk3 the first WRITE /
  // PATCH read is issued speculatively; a refused request just ignores it.
  always_comb begin
    pb_re  = 1'b0;
    pbr_d  = aptr_d;
    acc_re = 1'b0;
    arb_d  = accp_d;
    case (st_q)
      StChk3: begin
        pb_re = (op == OpWrite) || (op == OpPatch);
        pbr_d = (op == OpWrite) ? BAW'(4) : BAW'(0);
      end
      StWrite, StPscan, StPapply: begin
        pb_re = 1'b1;
        pbr_d = BAW'(wsrc_d);
      end
      StTurn, StLoad, StStream: begin
        pb_re  = 1'b1;
        acc_re = (st_q != StTurn);
      end
      StReply: begin
        acc_re = pacc_q;
        arb_d  = rptr_d[AAW+1:2];
      end
      default: ;
    endcase
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      st_q     <= StHunt;
      seg_q    <= SegSync;
      hcnt_q   <= '0;
      idle_q   <= '0;
      ptr_q    <= '0;
      crc_q    <= 16'hFFFF;
      rate_q   <= '0;
      seed_q   <= '0;
      p_q      <= '0;
      cycles_q <= '0;
      macs_q   <= '0;
      flips_q  <= '0;
      hrem_q   <= '0;
      prem_q   <= '0;
      pacc_q   <= 1'b0;
      rptr_q   <= '0;
      kt_q     <= '0;
      nt_q     <= '0;
      lcnt_q   <= '0;
      t_q      <= '0;
      tk_q     <= '0;
      wp_q     <= '0;
      aptr_q   <= '0;
      accp_q   <= '0;
      krem_q   <= '0;
      nrem_q   <= '0;
      wsrc_q   <= '0;
      wdst_q   <= '0;
      wrem_q   <= '0;
    end else begin
      st_q     <= st_d;
      seg_q    <= seg_d;
      hcnt_q   <= hcnt_d;
      idle_q   <= idle_d;
      ptr_q    <= ptr_d;
      crc_q    <= crc_d;
      rate_q   <= rate_d;
      seed_q   <= seed_d;
      p_q      <= p_d;
      cycles_q <= cycles_d;
      macs_q   <= macs_d;
      flips_q  <= flips_d;
      hrem_q   <= hrem_d;
      prem_q   <= prem_d;
      pacc_q   <= pacc_d;
      rptr_q   <= rptr_d;
      kt_q     <= kt_d;
      nt_q     <= nt_d;
      lcnt_q   <= lcnt_d;
      t_q      <= t_d;
      tk_q     <= tk_d;
      wp_q     <= wp_d;
      aptr_q   <= aptr_d;
      accp_q   <= accp_d;
      krem_q   <= krem_d;
      nrem_q   <= nrem_d;
      wsrc_q   <= wsrc_d;
      wdst_q   <= wdst_d;
      wrem_q   <= wrem_d;
    end
  end

  always_ff @(posedge clk_i) begin
    hdr_q    <= hdr_d;
    rxcrc_q  <= rxcrc_d;
    crc_ok_q <= crc_ok_d;
    fld_q    <= fld_d;
    mk_q     <= mk_d;
    mn_q     <= mn_d;
    tiles_q  <= tiles_d;
    ktn_q    <= ktn_d;
    ntn_q    <= ntn_d;
    mkn_q    <= mkn_d;
    key_q    <= key_d;
    hout_q   <= hout_d;
    rinfo_q  <= rinfo_d;
    mul_s_q  <= mul_s_d;
  end

endmodule
