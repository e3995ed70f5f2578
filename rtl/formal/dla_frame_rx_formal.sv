// Formal harness of the frame receiver alone (rtl/formal/dla_core.sby task
// rx_idle, scripts/formal): dla_frame_rx with one byte a beat, a 32-byte
// buffer and IdleTimeout 4, reset in the first cycle and every other input
// free in every cycle: the byte stream (garbage, partial frames, valid
// frames), the beat count, and start_i, the core's "request executed, hunt
// again", at any time. Its properties (DLA_FORMAL_RX, in dla_frame_rx.sv)
// therefore hold against any core and any host.
module dla_frame_rx_formal (
  input logic       clk_i,
  input logic       rst_ni,        // free after the first cycle
  input logic       in_valid_i,
  input logic [7:0] in_data_i,
  input logic [0:0] in_count_i,
  input logic       start_i
);
  logic f_init = 1'b1;
  always_ff @(posedge clk_i) f_init <= 1'b0;

  logic                            in_ready, frame_done, len_bad, crc_init, crc_en;
  logic [0:0]                      in_max, crc_count;
  logic [7:0]                      op, crc_data;
  logic [15:0]                     seq, crc;
  logic [31:0]                     len;
  logic [8*dla_pkg::FieldBytes-1:0] fields;
  logic [0:0]                      buf_we;
  logic [4:0]                      buf_waddr;
  logic [7:0]                      buf_wdata;

  dla_frame_rx #(
    .StreamBytes(1),
    .BufBytes   (32),
    .IdleTimeout(4)
  ) u_rx (
    .clk_i       (clk_i),
    .rst_ni      (rst_ni && !f_init),
    .in_valid_i  (in_valid_i),
    .in_data_i   (in_data_i),
    .in_count_i  (in_count_i),
    .in_ready_o  (in_ready),
    .in_max_o    (in_max),
    .start_i     (start_i),
    .frame_done_o(frame_done),
    .len_bad_o   (len_bad),
    .op_o        (op),
    .seq_o       (seq),
    .len_o       (len),
    .fields_o    (fields),
    .crc_o       (crc),
    .crc_init_o  (crc_init),
    .crc_en_o    (crc_en),
    .crc_data_o  (crc_data),
    .crc_count_o (crc_count),
    .buf_we_o    (buf_we),
    .buf_waddr_o (buf_waddr),
    .buf_wdata_o (buf_wdata)
  );

  logic unused_formal;
  assign unused_formal = ^{in_ready, in_max, frame_done, len_bad, op, seq, len, fields, crc,
                           crc_init, crc_en, crc_data, crc_count, buf_we, buf_waddr, buf_wdata};
endmodule
