// Status decision of a received request (docs/protocol.md section 1 rule 3,
// section 2 "OUT_OF_RANGE when"), combinational: BAD_CRC, then BAD_OPCODE,
// then BAD_LENGTH, then OUT_OF_RANGE, else OK. Range checks are done wide
// enough that base + size cannot wrap into range.
//
// The MATMUL products (m*k for the length, m*n, KT*NT tiles) come from the
// controller's serial multiplier. en_i low forces StsOk without evaluating
// anything (the controller only reads the status in its check state; it
// also lets the simulator skip the comparisons in every other cycle).
module dla_req_check #(
  parameter int ArrayRows = 16,
  parameter int ArrayCols = 16,
  parameter int WmemBytes = 1 << 20,
  parameter int AccWords  = 1 << 17,
  parameter bit HasSeu    = 1'b1
) (
  input  logic        en_i,
  input  logic        crc_ok_i,
  input  logic [7:0]  op_i,
  input  logic [31:0] len_i,
  // request fields (payload bytes 0..11, by opcode)
  input  logic [31:0] addr_i,         // WRITE_WEIGHTS addr, MATMUL base, SET_SEU rate
  input  logic [7:0]  row_i,          // SET_FAULT, SET_BYPASS
  input  logic [7:0]  col_i,
  input  logic [7:0]  site_i,         // SET_FAULT site, SET_BYPASS on
  input  logic [31:0] sa0_i,          // SET_FAULT masks
  input  logic [31:0] sa1_i,
  input  logic [15:0] m_i,            // MATMUL
  input  logic [15:0] k_i,
  input  logic [15:0] n_i,
  input  logic [7:0]  rot_rows_i,
  input  logic [7:0]  rot_cols_i,
  input  logic [31:0] mk_i,           // m*k
  input  logic [31:0] mn_i,           // m*n
  input  logic [31:0] tiles_i,        // KT*NT
  output logic [7:0]  status_o
);

  localparam int RowBits = $clog2(ArrayRows);
  localparam int ColBits = $clog2(ArrayCols);

  logic [47:0] weights_end;          // MATMUL: base + KT*NT*R*C
  logic [32:0] write_end;            // WRITE_WEIGHTS: addr + len - 4
  logic        fault_bad, bypass_bad;

  // The status is decided in a block-local variable and driven once at the
  // end: a default-then-override on status_o itself glitches it, and under
  // Icarus 11 that glitch and the reply transmitter's woke each other
  // forever (a zero-delay loop) on a refused MATMUL.
  always_comb begin
    logic [7:0] status;
    weights_end = '0;
    write_end   = '0;
    fault_bad   = 1'b0;
    bypass_bad  = 1'b0;
    status      = dla_pkg::StsOk;
    if (en_i) begin
      weights_end = 48'(addr_i) + (48'(tiles_i) << (RowBits + ColBits));
      write_end   = 33'(addr_i) + 33'(len_i) - 33'(dla_pkg::LenWriteAddr);
      fault_bad   = (32'(row_i) >= 32'(ArrayRows)) || (32'(col_i) >= 32'(ArrayCols)) ||
                    (site_i > 8'(dla_pkg::SiteWeight)) ||
                    ((site_i != 8'(dla_pkg::SitePsum)) &&
                     ((sa0_i[31:8] != 24'd0) || (sa1_i[31:8] != 24'd0))) ||
                    ((sa0_i & sa1_i) != 32'd0);
      bypass_bad  = (32'(row_i) >= 32'(ArrayRows)) || (32'(col_i) >= 32'(ArrayCols)) ||
                    (site_i > 8'd1);
      if (!crc_ok_i) begin
        status = dla_pkg::StsBadCrc;
      end else begin
        unique case (op_i)
          dla_pkg::OpInfo, dla_pkg::OpReset, dla_pkg::OpClear, dla_pkg::OpCounters: begin
            if (len_i != 32'd0) status = dla_pkg::StsBadLength;
          end
          dla_pkg::OpWrite: begin
            if (len_i < dla_pkg::LenWriteAddr) status = dla_pkg::StsBadLength;
            else if (write_end > 33'(WmemBytes)) status = dla_pkg::StsOutOfRange;
          end
          dla_pkg::OpPatch: begin
            // a whole number of LenPatchEntry (4) byte entries
            if (len_i[1:0] != 2'b00) status = dla_pkg::StsBadLength;
          end
          dla_pkg::OpFault: begin
            if (len_i != dla_pkg::LenSetFault) status = dla_pkg::StsBadLength;
            else if (fault_bad) status = dla_pkg::StsOutOfRange;
          end
          dla_pkg::OpBypass: begin
            if (len_i != dla_pkg::LenSetBypass) status = dla_pkg::StsBadLength;
            else if (bypass_bad) status = dla_pkg::StsOutOfRange;
          end
          dla_pkg::OpSeu: begin
            if (len_i != dla_pkg::LenSetSeu) status = dla_pkg::StsBadLength;
            else if (addr_i > dla_pkg::SeuRateMax || (!HasSeu && addr_i != 32'd0)) begin
              status = dla_pkg::StsOutOfRange;
            end
          end
          dla_pkg::OpMatmul: begin
            if (len_i < dla_pkg::LenMatmulHead ||
                33'(len_i) != 33'(mk_i) + 33'(dla_pkg::LenMatmulHead)) begin
              status = dla_pkg::StsBadLength;
            end else if (m_i == 16'd0 || k_i == 16'd0 || n_i == 16'd0 ||
                         32'(rot_rows_i) >= 32'(ArrayRows) || 32'(rot_cols_i) >= 32'(ArrayCols) ||
                         addr_i[ColBits-1:0] != '0 ||
                         weights_end > 48'(WmemBytes) ||
                         mn_i > 32'(AccWords)) begin
              status = dla_pkg::StsOutOfRange;
            end
          end
          default: status = dla_pkg::StsBadOpcode;
        endcase
      end
    end
    status_o = status;
  end

endmodule
