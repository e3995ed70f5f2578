// Serial shift-add multiplier (the scheme of ibex_multdiv_slow): one bit of
// the multiplier per cycle, so an unsigned AWidth x BWidth product takes
// BWidth cycles and one adder. dla_core uses it for the MATMUL request checks
// (m*k, m*n, KT*NT, m*k*n), which are not timed by COUNTERS; four parallel
// multipliers would cost more LUTs than a small FPGA has.
//
// Handshake: start_i (the unit idle, or in the cycle of done_o) loads a_i and
// b_i; done_o is high for one cycle, BWidth cycles later, with the product on
// result_o. A start_i in the cycle of done_o begins the next product at
// once, so products run back to back.
module dla_mul_serial #(
  parameter int AWidth = 32,
  parameter int BWidth = 16,   // a power of two
  parameter int PWidth = AWidth + BWidth
) (
  input  logic              clk_i,
  input  logic              rst_ni,
  input  logic              start_i,
  input  logic [AWidth-1:0] a_i,
  input  logic [BWidth-1:0] b_i,
  output logic              done_o,
  output logic [PWidth-1:0] result_o
);

  localparam int StepW = $clog2(BWidth);

  if (BWidth < 2 || (BWidth & (BWidth - 1)) != 0) begin : g_bad_params
`ifndef __ICARUS__
    $error("dla_mul_serial: BWidth must be a power of two >= 2");
`endif
  end

  typedef dla_pkg::mul_state_e mul_state_e;

  mul_state_e        state_d, state_q;
  logic [StepW-1:0]  step_d, step_q;           // bit of the multiplier
  logic [PWidth-1:0] multiplicand_d, multiplicand_q;   // a << step
  logic [BWidth-1:0] multiplier_d, multiplier_q;       // b >> step
  logic [PWidth-1:0] product_d, product_q;     // partial product
  logic [PWidth-1:0] sum;

  assign sum      = multiplier_q[0] ? product_q + multiplicand_q : product_q;
  assign done_o   = (state_q == dla_pkg::MulBusy) && (step_q == StepW'(BWidth - 1));
  assign result_o = sum;

  always_comb begin
    state_d        = state_q;
    step_d         = step_q;
    multiplicand_d = multiplicand_q;
    multiplier_d   = multiplier_q;
    product_d      = product_q;
    unique case (state_q)
      dla_pkg::MulBusy: begin
        product_d      = sum;
        multiplicand_d = multiplicand_q << 1;
        multiplier_d   = multiplier_q >> 1;
        step_d         = step_q + StepW'(1);
        if (done_o) begin
          state_d = dla_pkg::MulIdle;
        end
      end
      default: ;   // MulIdle
    endcase
    if (start_i) begin
      state_d        = dla_pkg::MulBusy;
      step_d         = '0;
      multiplicand_d = PWidth'(a_i);
      multiplier_d   = b_i;
      product_d      = '0;
    end
  end

  always_ff @(posedge clk_i) begin
    if (!rst_ni) begin
      state_q <= dla_pkg::MulIdle;
    end else begin
      state_q <= state_d;
    end
  end

  always_ff @(posedge clk_i) begin
    step_q         <= step_d;
    multiplicand_q <= multiplicand_d;
    multiplier_q   <= multiplier_d;
    product_q      <= product_d;
  end

endmodule
