// Request frame receiver (docs/protocol.md section 1 receiver rules 1, 2, 4;
// stream port of section 5): hunts for ReqSync, takes the header, writes the
// payload into the payload buffer (lanes of the write beat), keeps payload
// bytes 0..FieldBytes-1 as the request fields, and takes the CRC bytes.
//
//  * The input beat is registered at the port: a beat accepted at cycle t is
//    held in beat_*_q and consumed at t+1, so nothing depends
//    combinationally on a port input (which also keeps the Verilated model's
//    input-combinational region tiny). in_ready_o/in_max_o are therefore
//    computed from the NEXT state (state_d, count_d, header_d); the beat is
//    always consumed at t+1 (no idle timeout fires in a cycle with a beat).
//  * frame_done_o: the last CRC byte is consumed this cycle; header, fields
//    and received CRC are valid from the next cycle until start_i. len_bad_o:
//    the header announces more than BufBytes (rule 2): the frame is refused
//    at once. After either the receiver idles (takes no input, rule 5) until
//    start_i, which makes it hunt from the next cycle.
//  * The running CRC is the core's (one dla_crc16 serves receive and reply,
//    which never overlap): crc_init_o restarts it, crc_en_o folds the beat.
//  * Idle timeout (rule 4): IdleTimeout cycles without a beat inside a frame
//    drop it silently.
module dla_frame_rx #(
  parameter int StreamBytes = 8,
  parameter int BufBytes    = 1 << 18,
  parameter int IdleTimeout = 4096,
  parameter int CntW        = $clog2(StreamBytes + 1),
  parameter int BufAW       = $clog2(BufBytes)
) (
  input  logic                       clk_i,
  input  logic                       rst_ni,
  // request stream
  input  logic                       in_valid_i,
  input  logic [8*StreamBytes-1:0]   in_data_i,
  input  logic [CntW-1:0]            in_count_i,
  output logic                       in_ready_o,
  output logic [CntW-1:0]            in_max_o,
  // controller
  input  logic                       start_i,
  output logic                       frame_done_o,
  output logic                       len_bad_o,
  // the request (held from frame_done_o / len_bad_o until the next header)
  output logic [7:0]                 op_o,
  output logic [15:0]                seq_o,        // this cycle's header (see len_bad_o)
  output logic [31:0]                len_o,
  output logic [8*dla_pkg::FieldBytes-1:0] fields_o,
  output logic [15:0]                crc_o,        // CRC bytes as received
  // running CRC
  output logic                       crc_init_o,
  output logic                       crc_en_o,
  output logic [8*StreamBytes-1:0]   crc_data_o,
  output logic [CntW-1:0]            crc_count_o,
  // payload buffer write: lane l is byte buf_waddr_o + l
  output logic [StreamBytes-1:0]     buf_we_o,
  output logic [BufAW-1:0]           buf_waddr_o,
  output logic [8*StreamBytes-1:0]   buf_wdata_o
);

  localparam int SB         = StreamBytes;
  localparam int IdleW      = $clog2(IdleTimeout + 1);
  // A payload is at most BufBytes (longer ones are refused from the header).
  localparam int CountW     = BufAW + 1;
  localparam int HeaderW    = 8 * dla_pkg::HeaderBytes;
  localparam int FieldW     = 8 * dla_pkg::FieldBytes;
  localparam int HeaderCntW = $clog2(dla_pkg::HeaderBytes);

  if (IdleTimeout < 1) begin : g_bad_params
`ifndef __ICARUS__
    $error("dla_frame_rx: IdleTimeout must be >= 1");
`endif
  end

  typedef dla_pkg::rx_state_e rx_state_e;

  // control (reset)
  rx_state_e             state_d, state_q;
  rx_state_e             state_next;            // state_d unless start_i
  logic [HeaderCntW-1:0] header_count_d, header_count_q;   // header bytes received
  logic [IdleW-1:0]      idle_d, idle_q;        // cycles without a beat
  logic [CountW-1:0]     count_d, count_q;      // payload bytes / CRC bytes received
  logic                  beat_valid_q;
  // datapath (no reset)
  logic [HeaderW-1:0]    header_d, header_q;    // {len u32, seq u16, op u8}
  logic [15:0]           crc_d, crc_q;          // received CRC
  logic [FieldW-1:0]     fields_d, fields_q;
  logic [8*SB-1:0]       beat_data_q;
  logic [CntW-1:0]       beat_count_q;
  logic [15:0]           beat_lo2;              // the first two bytes of the beat

  if (SB >= 2) begin : g_in_wide
    assign beat_lo2 = beat_data_q[15:0];
  end else begin : g_in_byte
    assign beat_lo2 = {8'h00, beat_data_q[7:0]};
  end

  // ---------------------------------------------------------------------------
  // Acceptance: {ready, max bytes} of a state
  // ---------------------------------------------------------------------------
  function automatic logic [CntW:0] accept(input rx_state_e st, input logic [31:0] left,
                                           input logic [31:0] count);
    accept = '0;
    unique case (st)
      dla_pkg::RxHunt, dla_pkg::RxHeader: accept = {1'b1, CntW'(1)};
      dla_pkg::RxPayload: accept = {1'b1, (left >= 32'(SB)) ? CntW'(SB) : CntW'(left)};
      dla_pkg::RxCrc:     accept = {1'b1, (SB >= 2 && count == 32'd0) ? CntW'(2) : CntW'(1)};
      default:            accept = '0;
    endcase
  endfunction

  logic [CntW:0]     accept_next;
  logic [CountW-1:0] left;          // payload bytes still expected (used in RxPayload only)

  assign left        = header_d[24 +: CountW] - count_d;
  assign accept_next = accept(state_d, 32'(left), 32'(count_d));
  assign in_ready_o  = accept_next[CntW];
  assign in_max_o    = accept_next[CntW-1:0];

  // The beat register (enable form: the port data is sampled only at the
  // clock edge, outside the input-combinational logic).
  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      beat_valid_q <= 1'b0;
    end else begin
      beat_valid_q <= in_valid_i && in_ready_o;
    end
  end

  always_ff @(posedge clk_i) begin
    if (in_valid_i && in_ready_o) begin
      beat_data_q  <= in_data_i;
      beat_count_q <= in_count_i;
    end
  end

  // ---------------------------------------------------------------------------
  // Frame FSM
  // ---------------------------------------------------------------------------
  always_comb begin
    state_next     = state_q;
    header_count_d = header_count_q;
    idle_d         = idle_q;
    count_d        = count_q;
    header_d       = header_q;
    crc_d          = crc_q;
    fields_d       = fields_q;
    buf_we_o       = '0;
    frame_done_o   = 1'b0;
    len_bad_o      = 1'b0;
    crc_init_o     = 1'b0;
    crc_en_o       = 1'b0;

    unique case (state_q)
      dla_pkg::RxHunt: begin
        if (beat_valid_q && beat_data_q[7:0] == dla_pkg::ReqSync) begin
          state_next     = dla_pkg::RxHeader;
          header_count_d = '0;
          idle_d         = '0;
          crc_init_o     = 1'b1;
        end
      end

      dla_pkg::RxHeader: begin
        if (beat_valid_q) begin
          crc_en_o       = 1'b1;
          header_d       = {beat_data_q[7:0], header_q[HeaderW-1:8]};
          header_count_d = header_count_q + HeaderCntW'(1);
          if (header_count_q == HeaderCntW'(dla_pkg::HeaderBytes - 1)) begin
            count_d = '0;
            if (header_d[55:24] > 32'(BufBytes)) begin
              state_next = dla_pkg::RxIdle;
              len_bad_o  = 1'b1;
            end else if (header_d[55:24] == 32'd0) begin
              state_next = dla_pkg::RxCrc;
            end else begin
              state_next = dla_pkg::RxPayload;
            end
          end
        end
      end

      dla_pkg::RxPayload: begin
        if (beat_valid_q) begin
          crc_en_o = 1'b1;
          for (int i = 0; i < SB; i++) begin
            buf_we_o[i] = (32'(i) < 32'(beat_count_q));
            // payload bytes 0..FieldBytes-1 are the fields of every request
            if (buf_we_o[i] && 32'(count_q) + 32'(i) < 32'(dla_pkg::FieldBytes)) begin
              fields_d[8*(count_q[3:0] + 4'(i)) +: 8] = beat_data_q[8*i +: 8];
            end
          end
          count_d = count_q + CountW'(beat_count_q);
          if (count_d == header_q[24 +: CountW]) begin
            count_d    = '0;
            state_next = dla_pkg::RxCrc;
          end
        end
      end

      dla_pkg::RxCrc: begin
        if (beat_valid_q) begin
          if (count_q == CountW'(0)) begin
            crc_d[7:0] = beat_lo2[7:0];
            if (beat_count_q == CntW'(2)) begin
              crc_d[15:8] = beat_lo2[15:8];
            end
          end else begin
            crc_d[15:8] = beat_lo2[7:0];
          end
          count_d = count_q + CountW'(beat_count_q);
          if (count_d == CountW'(dla_pkg::CrcBytes)) begin
            state_next   = dla_pkg::RxIdle;
            frame_done_o = 1'b1;
          end
        end
      end

      default: ;   // RxIdle
    endcase

    // Idle timeout inside a frame (rule 4).
    if (state_q == dla_pkg::RxHeader || state_q == dla_pkg::RxPayload ||
        state_q == dla_pkg::RxCrc) begin
      if (beat_valid_q) begin
        idle_d = '0;
      end else begin
        idle_d = idle_q + IdleW'(1);
        if (idle_q == IdleW'(IdleTimeout - 1)) begin
          state_next = dla_pkg::RxHunt;   // drop the partial frame silently
        end
      end
    end
  end

  // start_i is applied outside the FSM block: the controller derives it
  // from the reply and reads frame_done_o / len_bad_o, so one block doing
  // both would be a combinational cycle to the simulator's scheduler.
  assign state_d = start_i ? dla_pkg::RxHunt : state_next;

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q        <= dla_pkg::RxHunt;
      header_count_q <= '0;
      idle_q         <= '0;
      count_q        <= '0;
    end else begin
      state_q        <= state_d;
      header_count_q <= header_count_d;
      idle_q         <= idle_d;
      count_q        <= count_d;
    end
  end

  always_ff @(posedge clk_i) begin
    header_q <= header_d;
    crc_q    <= crc_d;
    fields_q <= fields_d;
  end

  assign op_o        = header_q[7:0];
  assign seq_o       = header_d[23:8];
  assign len_o       = header_q[55:24];
  assign fields_o    = fields_q;
  assign crc_o       = crc_q;
  assign crc_data_o  = beat_data_q;
  assign crc_count_o = beat_count_q;
  assign buf_waddr_o = count_q[BufAW-1:0];
  assign buf_wdata_o = beat_data_q;

`ifdef DLA_FORMAL_RX
  // Rule 4 as a property (rtl/formal/, scripts/formal), in the ibex way of
  // keeping a unit's assertions beside its logic. f_quiet_q counts the
  // cycles since the last beat transfer (saturating): IdleTimeout + 1 of them
  // leave no frame half received (one cycle for the beat register, then
  // IdleTimeout idle cycles), whatever state the receiver was in.
  localparam int QuietW = $clog2(IdleTimeout + 3);
  logic [QuietW-1:0] f_quiet_q;
  logic              f_in_frame;

  assign f_in_frame = (state_q == dla_pkg::RxHeader) || (state_q == dla_pkg::RxPayload) ||
                      (state_q == dla_pkg::RxCrc);

  always_ff @(posedge clk_i) begin
    if (!rst_ni || (in_valid_i && in_ready_o)) begin
      f_quiet_q <= '0;
    end else if (f_quiet_q != QuietW'(IdleTimeout + 2)) begin
      f_quiet_q <= f_quiet_q + QuietW'(1);
    end
  end

  always_comb begin
    if (rst_ni) begin
      // the idle counter stays in range inside a frame
      assert (!f_in_frame || idle_q < IdleW'(IdleTimeout));
      // after IdleTimeout + 1 quiet cycles the receiver hunts (or idles
      // while the core executes, which ends in start_i and hunting)
      assert (f_quiet_q < QuietW'(IdleTimeout + 1) || !f_in_frame);
    end
  end
`endif

endmodule
