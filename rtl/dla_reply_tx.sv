// Reply frame transmitter (docs/protocol.md section 1): RepSync, header
// (status, seq, len), payload, CRC, in beats of up to StreamBytes bytes into
// a 2-entry FIFO in front of the reply port (the port is registered, so no
// logic depends combinationally on out_ready_i).
//
//  * start_i (transmitter idle) takes status, seq and payload length; the
//    payload is the accumulator words 0..len/4-1 (from_acc_i, MATMUL) or
//    the INFO (info_i) or COUNTERS payload, both sent straight from their
//    sources (the counters do not move outside MATMUL).
//  * Accumulator words are read through the core's accumulator port a
//    cycle ahead (acc_re_o, acc_raddr_o: the next beat's first word);
//    acc_rdata_i lane w is word acc_raddr + w of the last read.
//  * The running CRC is the core's (shared with the receiver): crc_init_o
//    restarts it with the sync beat, crc_en_o folds a header or payload beat.
//  * done_o: the last CRC byte enters the FIFO this cycle; idle from the next.
module dla_reply_tx #(
  parameter int          ArrayRows   = 16,
  parameter int          ArrayCols   = 16,
  parameter int          WmemBytes   = 1 << 20,
  parameter int          BufBytes    = 1 << 18,
  parameter int          AccWords    = 1 << 17,
  parameter int          StreamBytes = 8,
  parameter logic [31:0] Features    = 32'h0,   // INFO feature bits
  parameter int          CntW        = $clog2(StreamBytes + 1),
  parameter int          AccAW       = $clog2(AccWords),
  parameter int          RdWords     = (StreamBytes >= 4) ? StreamBytes / 4 : 1
) (
  input  logic                     clk_i,
  input  logic                     rst_ni,
  // reply request
  input  logic                     start_i,
  input  logic [7:0]               status_i,
  input  logic [15:0]              seq_i,
  input  logic [31:0]              len_i,        // <= 4*AccWords
  input  logic                     from_acc_i,
  input  logic                     info_i,
  input  logic [191:0]             counters_i,   // {flips, macs, cycles}
  output logic                     busy_o,
  output logic                     done_o,
  // accumulator reads
  output logic                     acc_re_o,
  output logic [AccAW-1:0]         acc_raddr_o,
  input  logic [32*RdWords-1:0]    acc_rdata_i,
  // running CRC
  input  logic [15:0]              crc_i,
  output logic                     crc_init_o,
  output logic                     crc_en_o,
  output logic [8*StreamBytes-1:0] crc_data_o,
  output logic [CntW-1:0]          crc_count_o,
  // reply stream
  output logic                     out_valid_o,
  output logic [8*StreamBytes-1:0] out_data_o,
  output logic [CntW-1:0]          out_count_o,
  input  logic                     out_ready_i
);

  localparam int SB = StreamBytes;
  // A reply payload is at most 4*AccWords bytes.
  localparam int PayloadW = (AccAW + 3 > 5) ? AccAW + 3 : 5;
  localparam int HeaderW  = 8 * dla_pkg::HeaderBytes;
  // Widths of the beat sources: each source is widened to at least SB bytes
  // so one expression serves every StreamBytes.
  localparam int HeaderSrcB = (SB > dla_pkg::HeaderBytes) ? SB : dla_pkg::HeaderBytes;
  localparam int SmallSrcB  = (SB > 24) ? SB : 24;
  localparam int CrcSrcB    = (SB > dla_pkg::CrcBytes) ? SB : dla_pkg::CrcBytes;
  localparam int AccSrcB    = (SB > 4 * RdWords) ? SB : 4 * RdWords;

  typedef dla_pkg::tx_state_e tx_state_e;

  // control (reset)
  tx_state_e           state_d, state_q;
  logic [3:0]          bytes_left_d, bytes_left_q;       // header / CRC bytes left
  logic [PayloadW-1:0] payload_left_d, payload_left_q;   // payload bytes left
  logic                from_acc_d, from_acc_q;
  logic [AccAW+1:0]    payload_ptr_d, payload_ptr_q;     // payload byte pointer
  logic [AccAW+1:0]    payload_ptr_next;                 // payload_ptr_d without start_i
  // datapath (no reset)
  logic [HeaderW-1:0]  header_d, header_q;               // header bytes still to send
  logic                info_d, info_q;

  // beat into the FIFO
  logic            beat_valid, beat_ready, beat_fire;
  logic [8*SB-1:0] beat_data;
  logic [CntW-1:0] beat_count;

  assign busy_o = (state_q != dla_pkg::TxIdle);

  // ---------------------------------------------------------------------------
  // Beat
  // ---------------------------------------------------------------------------
  logic [8*HeaderSrcB-1:0] header_src;
  logic [8*SmallSrcB-1:0]  small_src;
  logic [8*CrcSrcB-1:0]    crc_src;
  logic [8*AccSrcB-1:0]    acc_src;

  always_comb begin
    beat_valid = 1'b0;
    beat_data  = '0;
    beat_count = '0;
    header_src = '0;
    small_src  = '0;
    crc_src    = '0;
    acc_src    = '0;
    unique case (state_q)
      dla_pkg::TxSync: begin
        beat_valid     = 1'b1;
        beat_data[7:0] = dla_pkg::RepSync;
        beat_count     = CntW'(1);
      end
      dla_pkg::TxHeader: begin
        beat_valid = 1'b1;
        header_src[HeaderW-1:0] = header_q;
        beat_data  = header_src[8*SB-1:0];
        beat_count = (32'(bytes_left_q) >= 32'(SB)) ? CntW'(SB) : CntW'(bytes_left_q);
      end
      dla_pkg::TxPayload: begin
        beat_valid = 1'b1;
        beat_count = (32'(payload_left_q) >= 32'(SB)) ? CntW'(SB) : CntW'(payload_left_q);
        if (from_acc_q) begin
          acc_src[32*RdWords-1:0] = acc_rdata_i;
          acc_src   = acc_src >> (32'(payload_ptr_q[1:0]) << 3);
          beat_data = acc_src[8*SB-1:0];
        end else begin
          // INFO or COUNTERS, byte payload_ptr onwards
          small_src[191:0] = info_q ? {32'h0, Features, 32'(AccWords), 32'(BufBytes),
                                       32'(WmemBytes), 8'(ArrayCols), 8'(ArrayRows),
                                       dla_pkg::RtlVersion, dla_pkg::ProtoVersion}
                                    : counters_i;
          small_src = small_src >> (8 * 32'(payload_ptr_q));
          beat_data = small_src[8*SB-1:0];
        end
      end
      dla_pkg::TxCrc: begin
        beat_valid = 1'b1;
        crc_src[15:0] = (bytes_left_q == 4'(dla_pkg::CrcBytes)) ? crc_i : {8'h00, crc_i[15:8]};
        beat_data  = crc_src[8*SB-1:0];
        beat_count = (32'(bytes_left_q) >= 32'(SB)) ? CntW'(SB) : CntW'(bytes_left_q);
      end
      default: ;   // TxIdle
    endcase
  end

  assign beat_fire   = beat_valid && beat_ready;
  assign crc_init_o  = beat_fire && (state_q == dla_pkg::TxSync);
  assign crc_en_o    = beat_fire && (state_q == dla_pkg::TxHeader || state_q == dla_pkg::TxPayload);
  assign crc_data_o  = beat_data;
  assign crc_count_o = beat_count;
  // The last CRC bytes leave. Apart from the FSM block (which takes
  // start_i): the controller answers done_o, so one block doing both would
  // be a combinational cycle to the simulator's scheduler.
  assign done_o      = beat_fire && (state_q == dla_pkg::TxCrc) && (bytes_left_q == 4'(beat_count));

  // ---------------------------------------------------------------------------
  // Frame FSM
  // ---------------------------------------------------------------------------
  always_comb begin
    state_d          = state_q;
    bytes_left_d     = bytes_left_q;
    payload_left_d   = payload_left_q;
    from_acc_d       = from_acc_q;
    payload_ptr_next = payload_ptr_q;
    header_d         = header_q;
    info_d           = info_q;

    if (beat_fire) begin
      unique case (state_q)
        dla_pkg::TxSync: begin
          state_d      = dla_pkg::TxHeader;
          bytes_left_d = 4'(dla_pkg::HeaderBytes);
        end
        dla_pkg::TxHeader: begin
          header_d     = header_q >> (8 * 32'(beat_count));
          bytes_left_d = bytes_left_q - 4'(beat_count);
          if (bytes_left_d == 4'd0) begin
            if (payload_left_q != PayloadW'(0)) begin
              state_d = dla_pkg::TxPayload;
            end else begin
              state_d      = dla_pkg::TxCrc;
              bytes_left_d = 4'(dla_pkg::CrcBytes);
            end
          end
        end
        dla_pkg::TxPayload: begin
          payload_ptr_next = payload_ptr_q + (AccAW+2)'(beat_count);
          payload_left_d   = payload_left_q - PayloadW'(beat_count);
          if (payload_left_d == PayloadW'(0)) begin
            state_d      = dla_pkg::TxCrc;
            bytes_left_d = 4'(dla_pkg::CrcBytes);
          end
        end
        dla_pkg::TxCrc: begin
          bytes_left_d = bytes_left_q - 4'(beat_count);
          if (bytes_left_d == 4'd0) begin
            state_d = dla_pkg::TxIdle;
          end
        end
        default: ;   // TxIdle: no beat
      endcase
    end

    payload_ptr_d = payload_ptr_next;
    if (start_i) begin
      state_d        = dla_pkg::TxSync;
      header_d       = {len_i, seq_i, status_i};
      payload_left_d = PayloadW'(len_i);
      from_acc_d     = from_acc_i;
      payload_ptr_d  = '0;
      info_d         = info_i;
    end
  end

  // The next beat's first accumulator word (the read is issued a cycle
  // ahead). start_i only comes while idle, so the address skips its path
  // (the request checks behind it would otherwise reach the RAM address).
  assign acc_re_o    = busy_o && from_acc_q;
  assign acc_raddr_o = payload_ptr_next[AccAW+1:2];

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q        <= dla_pkg::TxIdle;
      bytes_left_q   <= '0;
      payload_left_q <= '0;
      from_acc_q     <= 1'b0;
      payload_ptr_q  <= '0;
    end else begin
      state_q        <= state_d;
      bytes_left_q   <= bytes_left_d;
      payload_left_q <= payload_left_d;
      from_acc_q     <= from_acc_d;
      payload_ptr_q  <= payload_ptr_d;
    end
  end

  always_ff @(posedge clk_i) begin
    header_q <= header_d;
    info_q   <= info_d;
  end

  // ---------------------------------------------------------------------------
  // FIFO (2 entries)
  // ---------------------------------------------------------------------------
  logic [1:0]      fifo_count_d, fifo_count_q;
  logic [8*SB-1:0] fifo0_data_d, fifo0_data_q, fifo1_data_d, fifo1_data_q;
  logic [CntW-1:0] fifo0_count_d, fifo0_count_q, fifo1_count_d, fifo1_count_q;
  logic            pop;

  assign beat_ready  = (fifo_count_q != 2'd2);
  assign out_valid_o = (fifo_count_q != 2'd0);
  assign out_data_o  = fifo0_data_q;
  assign out_count_o = fifo0_count_q;
  assign pop         = out_valid_o && out_ready_i;

  always_comb begin
    fifo_count_d  = fifo_count_q;
    fifo0_data_d  = fifo0_data_q;
    fifo0_count_d = fifo0_count_q;
    fifo1_data_d  = fifo1_data_q;
    fifo1_count_d = fifo1_count_q;
    if (pop) begin
      fifo0_data_d  = fifo1_data_q;
      fifo0_count_d = fifo1_count_q;
      fifo_count_d  = fifo_count_q - 2'd1;
    end
    if (beat_fire) begin
      if (fifo_count_d == 2'd0) begin
        fifo0_data_d  = beat_data;
        fifo0_count_d = beat_count;
      end else begin
        fifo1_data_d  = beat_data;
        fifo1_count_d = beat_count;
      end
      fifo_count_d = fifo_count_d + 2'd1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      fifo_count_q <= '0;
    end else begin
      fifo_count_q <= fifo_count_d;
    end
  end

  always_ff @(posedge clk_i) begin
    fifo0_data_q  <= fifo0_data_d;
    fifo0_count_q <= fifo0_count_d;
    fifo1_data_q  <= fifo1_data_d;
    fifo1_count_q <= fifo1_count_d;
  end

endmodule
