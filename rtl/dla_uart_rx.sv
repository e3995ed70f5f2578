// 8N1 UART receiver. One start bit (0), eight data bits LSB first, one stop
// bit (1); the bit period is cpb_i + frac_i / 8 clock cycles (cpb_i >= 4).
//
//  * The fraction: each bit lasts cpb_i or cpb_i + 1 cycles, chosen by a
//    3-bit phase accumulator (started at one half), so every sample point
//    is within half a cycle of where an exact period puts it. That lets a
//    clock that no integer divides reach a rate within 2 % (ULX3S: 3 Mbaud
//    from 25 MHz is 8 3/8 cycles, +0.5 %; docs/boards.md).
//
//  * rx_i is synchronised by two flops (the line is asynchronous on a board).
//  * A falling edge starts a byte; the start bit is re-checked at its middle
//    (a glitch shorter than half a bit returns to idle), then every bit is
//    sampled one period later, at its middle.
//  * A byte whose stop bit reads 0 (framing error, or a break) is dropped and
//    the receiver waits for the line to return to 1 before hunting again.
//  * valid_o pulses for one cycle with data_o; there is no back-pressure (the
//    owner buffers: dla_uart_top has a FIFO).
module dla_uart_rx #(
  parameter int CpbW = 16
) (
  input  logic            clk_i,
  input  logic            rst_ni,
  input  logic [CpbW-1:0] cpb_i,     // clock cycles per bit, whole part
  input  logic [2:0]      frac_i,    // and eighths of a cycle
  input  logic            rx_i,      // asynchronous serial input, idle 1
  output logic            valid_o,
  output logic [7:0]      data_o,
  output logic            busy_o     // a byte is being received
);

  typedef dla_pkg::uart_rx_state_e uart_rx_state_e;

  logic [1:0]      sync_q;
  uart_rx_state_e  state_d, state_q;
  logic [CpbW-1:0] cnt_d, cnt_q;
  logic [2:0]      bit_d, bit_q;
  logic [7:0]      sh_d, sh_q;
  logic            brk_d, brk_q;       // framing error: wait for idle line
  logic            valid_d, valid_q;
  logic [2:0]      frac_d, frac_q;     // phase of the bit clock, in eighths
  logic            rx;
  logic [3:0]      frac_sum;
  logic [CpbW-1:0] period;             // cycles of the next bit, minus one

  assign rx       = sync_q[1];
  assign frac_sum = {1'b0, frac_q} + {1'b0, frac_i};
  assign period   = cpb_i - CpbW'(1) + CpbW'(frac_sum[3]);

  always_comb begin
    state_d = state_q;
    cnt_d   = cnt_q;
    bit_d   = bit_q;
    sh_d    = sh_q;
    brk_d   = brk_q;
    valid_d = 1'b0;
    frac_d  = frac_q;
    unique case (state_q)
      dla_pkg::UartIdle: begin
        if (brk_q) begin
          brk_d = !rx;
        end else if (!rx) begin
          state_d = dla_pkg::UartStart;
          cnt_d   = (cpb_i >> 1) - CpbW'(1);   // to the middle of the start bit
          frac_d  = 3'd4;
        end
      end
      dla_pkg::UartStart: begin
        if (cnt_q != '0) begin
          cnt_d = cnt_q - CpbW'(1);
        end else if (rx) begin
          state_d = dla_pkg::UartIdle;       // glitch
        end else begin
          state_d = dla_pkg::UartData;
          cnt_d   = period;
          frac_d  = frac_sum[2:0];
          bit_d   = '0;
        end
      end
      dla_pkg::UartData: begin
        if (cnt_q != '0) begin
          cnt_d = cnt_q - CpbW'(1);
        end else begin
          sh_d   = {rx, sh_q[7:1]};
          cnt_d  = period;
          frac_d = frac_sum[2:0];
          bit_d = bit_q + 3'd1;
          if (bit_q == 3'd7) begin
            state_d = dla_pkg::UartStop;
          end
        end
      end
      default: begin  // UartStop
        if (cnt_q != '0) begin
          cnt_d = cnt_q - CpbW'(1);
        end else begin
          state_d = dla_pkg::UartIdle;
          valid_d = rx;
          brk_d   = !rx;
        end
      end
    endcase
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      sync_q  <= 2'b11;
      state_q <= dla_pkg::UartIdle;
      cnt_q   <= '0;
      bit_q   <= '0;
      brk_q   <= 1'b0;
      valid_q <= 1'b0;
      frac_q  <= '0;
    end else begin
      sync_q  <= {sync_q[0], rx_i};
      state_q <= state_d;
      cnt_q   <= cnt_d;
      bit_q   <= bit_d;
      brk_q   <= brk_d;
      valid_q <= valid_d;
      frac_q  <= frac_d;
    end
  end

  always_ff @(posedge clk_i) begin
    sh_q <= sh_d;
  end

  assign valid_o = valid_q;
  assign data_o  = sh_q;
  assign busy_o  = (state_q != dla_pkg::UartIdle);

endmodule
