// Formal harness of dla_core's receiver in a reduced configuration (2x2,
// one byte a beat, small memories, IdleTimeout 4, no SEU hash). Run by
// scripts/formal through rtl/formal/dla_core.sby; docs/results.md has the
// figures. The request stream is free (any byte, any time: garbage, partial
// frames, valid requests of every opcode); the reply port is always ready.
//
//   DLA_FORMAL_RX  (dla_frame_rx) rule 4: after IdleTimeout + 1 cycles
//                  without a beat no frame is half received: the receiver
//                  hunts for the sync byte (or idles while the core executes).
//   PROP_READY     the core never stops taking input: after a bounded number
//                  of cycles with in_ready_o low it is ready again (the
//                  longest request of this configuration plus its reply).
//   PROP_INFO      after any garbage, once the host is silent for
//                  IdleTimeout + 2 cycles and then sends a valid INFO frame
//                  (seq 1), the next reply is 5A 00 01 00 ... (OK, seq 1) and
//                  begins within InfoLatency cycles of the frame's last byte.
module dla_core_formal #(
  parameter int IdleTimeout = 4,
  parameter int ReadyBound  = 160,   // cycles not ready, at most
  parameter int InfoLatency = 16
) (
  input logic       clk_i,
  input logic       any_valid_i,     // the free stream (before f_go)
  input logic [7:0] any_data_i,
  input logic       go_i             // the host stops sending garbage
);
  logic       rst_n;
  logic       f_init = 1'b1;
  logic       in_valid, in_ready;
  logic [7:0] in_data;
  logic [0:0] in_count, in_max;
  logic       out_valid;
  logic [7:0] out_data;
  logic [0:0] out_count;

  always_ff @(posedge clk_i) f_init <= 1'b0;
  assign rst_n = !f_init;

  dla_core #(
    .ArrayRows    (2),
    .ArrayCols    (2),
    .WmemBytes    (16),
    .BufBytes     (32),
    .AccWords     (4),
    .StreamBytes  (1),
    .IdleTimeout  (IdleTimeout),
    .HasDefectPort(1'b0),
    .HasSeu       (1'b0),
    .FastPath     (1'b0)
  ) u_core (
    .clk_i      (clk_i),
    .rst_ni     (rst_n),
    .in_valid_i (in_valid),
    .in_data_i  (in_data),
    .in_count_i (in_count),
    .in_ready_o (in_ready),
    .in_max_o   (in_max),
    .out_valid_o(out_valid),
    .out_data_o (out_data),
    .out_count_o(out_count),
    .out_ready_i(1'b1),
    .dft_we_i   (1'b0),
    .dft_row_i  (8'h00),
    .dft_col_i  (8'h00),
    .dft_site_i (2'd0),
    .dft_sa0_i  (32'h0),
    .dft_sa1_i  (32'h0)
  );

  assign in_count = 1'b1;

  logic unused_formal;
  assign unused_formal = ^{in_max, out_count, out_valid, out_data, go_i};

`ifndef PROP_INFO
  assign in_valid = any_valid_i;
  assign in_data  = any_data_i;
`endif

`ifdef PROP_READY
  assign in_data  = any_data_i;

  logic [7:0] f_busy_q;    // consecutive cycles with in_ready low
  always_ff @(posedge clk_i) begin
    if (!rst_n || in_ready) f_busy_q <= '0;
    else if (f_busy_q != 8'hFF) f_busy_q <= f_busy_q + 8'd1;
  end
  always_comb begin
    if (rst_n) assert (f_busy_q < 8'(ReadyBound));
  end
`endif

`ifdef PROP_INFO
  // INFO, seq 1 (docs/protocol.md s9).
  function automatic logic [7:0] info_byte(input logic [3:0] i);
    unique case (i)
      4'd0: info_byte = 8'hA5;
      4'd1: info_byte = 8'h01;
      4'd2: info_byte = 8'h01;
      4'd8: info_byte = 8'h0F;
      4'd9: info_byte = 8'h0C;
      default: info_byte = 8'h00;
    endcase
  endfunction

  logic       f_go_q;                   // garbage over
  logic [3:0] f_quiet_q;                // silent cycles after go
  logic [3:0] f_sent_q;                 // INFO bytes transferred
  logic [4:0] f_wait_q;                 // cycles since the last one
  logic [2:0] f_got_q;                  // reply bytes seen since
  logic       f_sending, f_done;

  assign f_sending = f_go_q && f_quiet_q == 4'(IdleTimeout + 2) && f_sent_q != 4'd10;
  assign f_done    = f_sent_q == 4'd10;
  assign in_valid  = f_go_q ? f_sending : any_valid_i;
  assign in_data   = f_go_q ? info_byte(f_sent_q) : any_data_i;

  always_ff @(posedge clk_i) begin
    if (!rst_n) begin
      f_go_q    <= 1'b0;
      f_quiet_q <= '0;
      f_sent_q  <= '0;
      f_wait_q  <= '0;
      f_got_q   <= '0;
    end else begin
      if (go_i) f_go_q <= 1'b1;
      if (f_go_q && f_quiet_q != 4'(IdleTimeout + 2)) f_quiet_q <= f_quiet_q + 4'd1;
      if (f_sending && in_ready) f_sent_q <= f_sent_q + 4'd1;
      if (f_done && f_got_q == 3'd0 && f_wait_q != 5'h1F) f_wait_q <= f_wait_q + 5'd1;
      if (f_done && out_valid && f_got_q != 3'd4) f_got_q <= f_got_q + 3'd1;
    end
  end

  always_comb begin
    if (rst_n && f_done) begin
      assert (f_wait_q < 5'(InfoLatency));
      if (out_valid) begin
        unique case (f_got_q)
          3'd0: assert (out_data == 8'h5A);    // reply sync
          3'd1: assert (out_data == 8'h00);    // OK
          3'd2: assert (out_data == 8'h01);    // seq 1
          3'd3: assert (out_data == 8'h00);
          default: ;
        endcase
      end
    end
  end
`endif

endmodule
