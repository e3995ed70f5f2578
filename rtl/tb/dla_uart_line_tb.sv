// Line-level testbench of dla_uart_top for event-driven simulators (Icarus
// Verilog; tests/tests/icarus.rs runs it): the board's clock and the serial
// line are independent, as on a real board. The host end of the line is
// modelled in real time (1 ps resolution) at an exact bit period, so a bit
// period the RTL only approximates (ClocksPerBit + ClocksPerBitFrac / 8
// cycles) is checked against the rate it claims, not against itself.
//
//   +in=FILE       request bytes, one hex byte a line ($readmemh)
//   +lens=FILE     one line per frame: "<request bytes> <reply bytes>" (decimal)
//   +frames=F      how many frames
//   +out=FILE      reply bytes, one hex byte a line, as the simulator prints
//                  them (four-state: "xx" for unknown bits)
//   +bit_ps=P      the host's bit period in ps (real; 3 Mbaud: 333333.333)
//   +host_ppm=E    the host sends E ppm slower (+) or faster (-) than bit_ps;
//                  it samples the board's bits at bit_ps exactly
//   +phase_ps=T    the host starts T ps after reset (its phase to the clock)
//
// The host sends a frame's bytes back to back, then waits for its reply (as
// faultloop's client does), and samples each reply bit at its middle, timed
// from the start bit's falling edge. It also measures every edge of the
// board's TX line against where an exact bit period puts it and prints the
// largest distance as "max_edge_dev_ppm <parts per million of a bit>", and
// "framing_errors N" (reply bytes whose stop bit read 0). A reply that does
// not come within 200 byte times prints TIMEOUT.
`timescale 1ps / 1ps
module dla_uart_line_tb #(
  parameter int ArrayRows        = 2,
  parameter int ArrayCols        = 2,
  parameter int WmemBytes        = 1024,
  parameter int BufBytes         = 256,
  parameter int AccWords         = 64,
  parameter int ClocksPerBit     = 8,
  parameter int ClocksPerBitFrac = 3,
  parameter int ClockPs          = 40000,    // 25 MHz
  parameter int MaxIn            = 1 << 16
);
  logic clk = 1'b0;
  logic rst_n = 1'b0;
  logic line_rx = 1'b1;       // host -> board
  logic line_tx;              // board -> host
  logic busy;

  dla_uart_top #(
    .ArrayRows       (ArrayRows),
    .ArrayCols       (ArrayCols),
    .WmemBytes       (WmemBytes),
    .BufBytes        (BufBytes),
    .AccWords        (AccWords),
    .IdleTimeout     (1 << 14),
    .ClocksPerBit    (ClocksPerBit),
    .ClocksPerBitFrac(ClocksPerBitFrac),
    .HasDefectPort   (1'b0),
    .HasSeu          (1'b1),
    .FastPath        (1'b0)
  ) u_dut (
    .clk_i     (clk),
    .rst_ni    (rst_n),
    .uart_rx_i (line_rx),
    .uart_tx_o (line_tx),
    .cpb_i     (16'd0),
    .cpb_frac_i(3'd0),
    .busy_o    (busy),
    .dft_we_i  (1'b0),
    .dft_row_i (8'd0),
    .dft_col_i (8'd0),
    .dft_site_i(2'd0),
    .dft_sa0_i (32'd0),
    .dft_sa1_i (32'd0)
  );

  always #(ClockPs / 2) clk = ~clk;

  logic [7:0] in_mem [MaxIn];
  string      in_file, lens_file, out_file;
  integer     frames, fd_out, fd_lens, host_ppm, phase_ps, n_req, n_rep, pos;
  integer     got = 0, framing_errors = 0;
  real        bit_ps, host_bit_ps, max_dev = 0.0;
  time        t_start;            // falling edge of the reply byte being received
  bit         in_byte = 1'b0;

  // The host's transmitter: one byte, 8N1, at host_bit_ps.
  task automatic send_byte(input logic [7:0] b);
    line_rx = 1'b0;
    #(host_bit_ps);
    for (int i = 0; i < 8; i++) begin
      line_rx = b[i];
      #(host_bit_ps);
    end
    line_rx = 1'b1;
    #(host_bit_ps);
  endtask

  // The host's receiver: a falling edge starts a byte; bits are sampled at
  // their middles at the exact bit period.
  always @(negedge line_tx) begin
    if (rst_n && !in_byte) begin
      logic [7:0] b;
      in_byte = 1'b1;
      t_start = $time;
      #(bit_ps * 1.5);
      for (int i = 0; i < 8; i++) begin
        b[i] = line_tx;
        #(bit_ps);
      end
      if (line_tx !== 1'b1) framing_errors = framing_errors + 1;
      $fwrite(fd_out, "%h\n", b);
      got = got + 1;
      // Let the stop bit's last part pass before hunting again.
      #(bit_ps * 0.25);
      in_byte = 1'b0;
    end
  end

  // Every edge of a reply byte, against the nearest boundary of an exact
  // bit period counted from its start bit.
  always @(line_tx) begin
    if (in_byte && $time != t_start) begin
      real r, k, dev;
      r   = $itor($time - t_start);
      k   = $floor(r / bit_ps + 0.5);
      dev = r - k * bit_ps;
      if (dev < 0.0) dev = -dev;
      if (dev > max_dev) max_dev = dev;
    end
  end

  initial begin
    if (!$value$plusargs("in=%s", in_file) || !$value$plusargs("lens=%s", lens_file) ||
        !$value$plusargs("frames=%d", frames) || !$value$plusargs("out=%s", out_file) ||
        !$value$plusargs("bit_ps=%f", bit_ps)) begin
      $display("dla_uart_line_tb: need +in=FILE +lens=FILE +frames=F +out=FILE +bit_ps=P");
      $finish;
    end
    if (!$value$plusargs("host_ppm=%d", host_ppm)) host_ppm = 0;
    if (!$value$plusargs("phase_ps=%d", phase_ps)) phase_ps = 0;
    host_bit_ps = bit_ps * (1.0 + host_ppm / 1.0e6);
    $readmemh(in_file, in_mem);
    fd_out  = $fopen(out_file, "w");
    fd_lens = $fopen(lens_file, "r");
    if (fd_out == 0 || fd_lens == 0) begin
      $display("dla_uart_line_tb: cannot open %s or %s", out_file, lens_file);
      $finish;
    end
    repeat (4) @(posedge clk);
    rst_n = 1'b1;
    #(phase_ps);
    pos = 0;
    for (int f = 0; f < frames; f++) begin
      integer want, waited;
      if ($fscanf(fd_lens, "%d %d\n", n_req, n_rep) != 2) begin
        $display("dla_uart_line_tb: %s: no lengths for frame %0d", lens_file, f);
        $finish;
      end
      for (int i = 0; i < n_req; i++) send_byte(in_mem[pos + i]);
      pos  = pos + n_req;
      want = got + n_rep;
      waited = 0;
      while ((got < want || in_byte) && waited < 200 * 10 + 10 * n_rep) begin
        #(bit_ps);
        waited = waited + 1;
      end
      if (got < want) begin
        $display("TIMEOUT frame %0d: %0d of %0d reply bytes", f, got, want);
        f = frames;
      end
    end
    // A little silence, so a reply longer than expected shows up too.
    #(bit_ps * 40);
    $display("max_edge_dev_ppm %0d", $rtoi(max_dev / bit_ps * 1.0e6));
    $display("framing_errors %0d", framing_errors);
    $display("cycles %0d", $time / ClockPs);
    $fclose(fd_out);
    $finish;
  end

endmodule
