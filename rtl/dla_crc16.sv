// CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, not reflected, no final xor),
// folding up to `Bytes` bytes per cycle. Purely combinational: the owner keeps
// the running value in its own register. Byte 0 (bits 7:0) is folded first.
// When en_i is low the block does no work (crc_o = crc_i), which also lets
// the simulator skip the byte loop on idle cycles.
module dla_crc16 #(
  parameter int Bytes = 1,
  parameter int CntW  = $clog2(Bytes + 1)
) (
  input  logic                 en_i,
  input  logic [15:0]          crc_i,
  input  logic [8*Bytes-1:0]   data_i,
  input  logic [CntW-1:0]      count_i,   // number of valid bytes, 0..Bytes
  output logic [15:0]          crc_o
);

  // Byte-wise update, the classic closed form of the bit-serial LFSR:
  //   x = (crc >> 8) ^ b; x ^= x >> 4; crc = (crc << 8) ^ (x << 12) ^ (x << 5) ^ x
  function automatic logic [15:0] crc_byte(input logic [15:0] c, input logic [7:0] b);
    logic [15:0] x;
    x = {8'h00, c[15:8] ^ b};
    x = x ^ (x >> 4);
    crc_byte = (c << 8) ^ (x << 12) ^ (x << 5) ^ x;
  endfunction

  always_comb begin
    crc_o = crc_i;
    if (en_i) begin
      for (int i = 0; i < Bytes; i++) begin
        if (32'(i) < 32'(count_i)) begin
          crc_o = crc_byte(crc_o, data_i[8*i +: 8]);
        end
      end
    end
  end

endmodule
