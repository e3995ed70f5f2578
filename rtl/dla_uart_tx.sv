// 8N1 UART transmitter: start bit (0), eight data bits LSB first, one stop
// bit (1), each cpb_i + frac_i / 8 clock cycles long on average: a bit lasts
// cpb_i or cpb_i + 1 cycles, chosen by a 3-bit phase accumulator started at
// one half, so every edge is within half a cycle of an exact period's
// (dla_uart_rx has the same rule). valid_i/ready_o handshake: a byte is
// taken when both are high at a rising edge; ready_o is high whenever the
// transmitter is idle (also in the cycle the stop bit ends).
module dla_uart_tx #(
  parameter int CpbW = 16
) (
  input  logic            clk_i,
  input  logic            rst_ni,
  input  logic [CpbW-1:0] cpb_i,     // clock cycles per bit, whole part
  input  logic [2:0]      frac_i,    // and eighths of a cycle
  input  logic            valid_i,
  input  logic [7:0]      data_i,
  output logic            ready_o,
  output logic            tx_o,      // serial output, idle 1
  output logic            busy_o
);

  logic            act_d, act_q;       // a frame is on the line
  logic [CpbW-1:0] cnt_d, cnt_q;
  logic [3:0]      bit_d, bit_q;       // bits left after the current one
  logic [9:0]      sh_d, sh_q;         // {stop, data, start}, LSB on the line
  logic [2:0]      frac_d, frac_q;     // phase of the bit clock, in eighths
  logic [3:0]      frac_sum;
  logic [CpbW-1:0] period;             // cycles of the next bit, minus one

  // A frame starts its phase at one half; later bits carry it on.
  assign frac_sum = (act_q ? {1'b0, frac_q} : 4'd4) + {1'b0, frac_i};
  assign period   = cpb_i - CpbW'(1) + CpbW'(frac_sum[3]);

  assign ready_o = !act_q;

  always_comb begin
    act_d = act_q;
    cnt_d = cnt_q;
    bit_d = bit_q;
    sh_d  = sh_q;
    frac_d = frac_q;
    if (!act_q) begin
      if (valid_i) begin
        act_d  = 1'b1;
        sh_d   = {1'b1, data_i, 1'b0};
        cnt_d  = period;
        frac_d = frac_sum[2:0];
        bit_d  = 4'd9;
      end
    end else if (cnt_q != '0) begin
      cnt_d = cnt_q - CpbW'(1);
    end else if (bit_q == 4'd0) begin
      act_d = 1'b0;
      sh_d  = 10'h3FF;
    end else begin
      sh_d   = {1'b1, sh_q[9:1]};
      cnt_d  = period;
      frac_d = frac_sum[2:0];
      bit_d  = bit_q - 4'd1;
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      act_q <= 1'b0;
      cnt_q <= '0;
      bit_q <= '0;
      sh_q  <= 10'h3FF;
      frac_q <= '0;
    end else begin
      act_q <= act_d;
      cnt_q <= cnt_d;
      bit_q <= bit_d;
      sh_q  <= sh_d;
      frac_q <= frac_d;
    end
  end

  assign tx_o   = sh_q[0];
  assign busy_o = act_q;

endmodule
