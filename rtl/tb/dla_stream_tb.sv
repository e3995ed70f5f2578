// Byte-stream testbench of dla_sim_top for event-driven simulators (Icarus
// Verilog; tests/tests/icarus.rs runs it). Not part of the core (not in
// rtl/dla_core.f); Verilator drives dla_sim_top from C++ instead
// (sim-bridge/verilated/csrc/shim.cpp), with the same beat rules.
//
//   +in=FILE      request bytes, one hex byte a line ($readmemh)
//   +n=N          how many of them to send
//   +out=FILE     reply bytes are written there, one hex byte a line, as the
//                 simulator prints them ("xx"/"zz" for unknown bits, so a
//                 reader sees four-state values)
//   +expect=E     stop 64 cycles after E reply bytes (any later byte is still
//                 written, so a reply too long shows up)
//   +max_cycles=M give up after M clock cycles (prints TIMEOUT)
//
// The driver offers each beat at the falling edge, up to in_max_o bytes,
// exactly as the C++ shim does before its rising edge (docs/protocol.md s5);
// the reply port is always ready. Prints "cycles C" at the end.
module dla_stream_tb #(
  parameter int ArrayRows   = 4,
  parameter int ArrayCols   = 4,
  parameter int WmemBytes   = 1024,
  parameter int BufBytes    = 256,
  parameter int AccWords    = 64,
  parameter int StreamBytes = 8,
  parameter int IdleTimeout = 4096,
  parameter int MaxIn       = 1 << 20
);
  localparam int CntW = $clog2(StreamBytes + 1);

  logic                     clk = 1'b0;
  logic                     rst_n = 1'b0;
  logic                     in_valid = 1'b0;
  logic [8*StreamBytes-1:0] in_data = '0;
  logic [CntW-1:0]          in_count = '0;
  logic                     in_ready;
  logic [CntW-1:0]          in_max;
  logic                     out_valid;
  logic [8*StreamBytes-1:0] out_data;
  logic [CntW-1:0]          out_count;

  dla_sim_top #(
    .ArrayRows  (ArrayRows),
    .ArrayCols  (ArrayCols),
    .WmemBytes  (WmemBytes),
    .BufBytes   (BufBytes),
    .AccWords   (AccWords),
    .StreamBytes(StreamBytes),
    .IdleTimeout(IdleTimeout)
  ) u_dut (
    .clk_i      (clk),
    .rst_ni     (rst_n),
    .in_valid_i (in_valid),
    .in_data_i  (in_data),
    .in_count_i (in_count),
    .in_ready_o (in_ready),
    .in_max_o   (in_max),
    .out_valid_o(out_valid),
    .out_data_o (out_data),
    .out_count_o(out_count),
    .out_ready_i(1'b1)
  );

  logic [7:0] in_mem [MaxIn];
  string      in_file, out_file;
  integer     n_in, expect_bytes, max_cycles, fd;
  integer     pos = 0, got = 0, cycles = 0, after = -1;

  initial begin
    if (!$value$plusargs("in=%s", in_file) || !$value$plusargs("n=%d", n_in) ||
        !$value$plusargs("out=%s", out_file) || !$value$plusargs("expect=%d", expect_bytes) ||
        !$value$plusargs("max_cycles=%d", max_cycles)) begin
      $display("dla_stream_tb: need +in=FILE +n=N +out=FILE +expect=E +max_cycles=M");
      $finish;
    end
    if (n_in > MaxIn) begin
      $display("dla_stream_tb: +n=%0d is more than MaxIn=%0d", n_in, MaxIn);
      $finish;
    end
    if (n_in > 0) $readmemh(in_file, in_mem, 0, n_in - 1);
    fd = $fopen(out_file, "w");
    if (fd == 0) begin
      $display("dla_stream_tb: cannot write %s", out_file);
      $finish;
    end
  end

  always #5 clk = ~clk;

  // Four cycles of reset, then the stream.
  always @(posedge clk) begin
    cycles <= cycles + 1;
    if (cycles == 3) rst_n <= 1'b1;
  end

  always @(negedge clk) begin
    in_valid = 1'b0;
    in_count = '0;
    in_data  = '0;
    if (rst_n && in_ready && pos < n_in) begin
      for (int i = 0; i < StreamBytes; i++) begin
        if (i < 32'(in_max) && pos + i < n_in) begin
          in_data[8*i +: 8] = in_mem[pos + i];
          in_count          = in_count + CntW'(1);
        end
      end
      in_valid = 1'b1;
    end
  end

  always @(posedge clk) begin
    if (in_valid && in_ready) pos <= pos + 32'(in_count);
    if (out_valid) begin
      for (int i = 0; i < StreamBytes; i++) begin
        if (i < 32'(out_count)) $fwrite(fd, "%h\n", out_data[8*i +: 8]);
      end
      got <= got + 32'(out_count);
    end
    if (after < 0 && got >= expect_bytes && pos >= n_in) after <= 64;
    if (after > 0) after <= after - 1;
    if (after == 0 || cycles >= max_cycles) begin
      if (after != 0) $display("TIMEOUT after %0d cycles (%0d of %0d input bytes sent)",
                               cycles, pos, n_in);
      $display("cycles %0d", cycles);
      $fclose(fd);
      $finish;
    end
  end

endmodule
