#!/usr/bin/env bash
# Bitstream for the iCEBreaker (iCE40UP5K-SG48, 12 MHz, FTDI UART) with
# Debian's yosys, nextpnr-ice40 and icepack: rtl/ice40/dla_ice40_top.sv
# around dla_uart_top. Tries the array sizes in ARRAYS (largest first) and
# keeps the first that places, routes and meets 12 MHz; prints LUT (LC), DSP,
# BRAM (EBR), SPRAM use and the Fmax nextpnr reports. Exits 1 if none fits.
#
#   scripts/fpga/ice40.sh                      # ARRAYS="4 2", 115200 baud
#   ARRAYS=4 WMEM=131072 BUF=1024 ACC=1024 BAUD=115200 scripts/fpga/ice40.sh
#
# Outputs in ${OUT:-build/fpga}: dla_ice40_<R>x<R>.{json,asc,bin}, logs, and
# summary.json. Flash with `iceprog build/fpga/dla_ice40.bin` (docs/boards.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

ARRAYS=${ARRAYS:-"4 2"}
WMEM=${WMEM:-131072}    # weight memory bytes: the four SPRAMs (128 KiB)
BUF=${BUF:-1024}        # request payload buffer bytes (EBR, banked)
ACC=${ACC:-1024}        # accumulator words (EBR, one bank per column)
BAUD=${BAUD:-115200}
OUT=${OUT:-build/fpga}
CLK_HZ=12000000
CPB=$(( (CLK_HZ + BAUD / 2) / BAUD ))
SEED=${SEED:-1}

for tool in yosys nextpnr-ice40 icepack; do
  command -v "$tool" >/dev/null || { echo "ice40.sh: $tool not found (apt-get install yosys nextpnr-ice40 fpga-icestorm)"; exit 2; }
done
mkdir -p "$OUT"
RTL=rtl
# The core's files (the one list, rtl/dla_core.f: paths relative to rtl/,
# // comments), then the board top and the iCEBreaker top.
CORE=$(sed -e 's|//.*||' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$RTL/dla_core.f" | grep -v '^$' | sed "s|^|$RTL/|" | tr '\n' ' ')
[ -n "$CORE" ] || { echo "ice40.sh: $RTL/dla_core.f lists no files"; exit 2; }
SRCS="$CORE$RTL/dla_uart_rx.sv $RTL/dla_uart_tx.sv $RTL/dla_uart_top.sv $RTL/ice40/dla_ice40_top.sv"

util() { # nextpnr log -> "LC a/b, DSP .., EBR .., SPRAM .."
  grep -E "ICESTORM_(LC|DSP|RAM|SPRAM):" "$1" | head -4 | awk '{sub(/:$/,"",$2); printf "%s %s%s %s  ", $2, $3, $4, $5}'
}

for n in $ARRAYS; do
  name="dla_ice40_${n}x${n}"
  echo "== ${n}x${n}: wmem ${WMEM} B, buf ${BUF} B, acc ${ACC} words, ${BAUD} baud (${CPB} clocks/bit)"
  t0=$SECONDS
  if ! yosys -q -l "$OUT/$name.yosys.log" -p "read_verilog -sv $SRCS;
      chparam -set ArrayRows $n -set ArrayCols $n -set WmemBytes $WMEM -set BufBytes $BUF -set AccWords $ACC -set ClocksPerBit $CPB dla_ice40_top;
      synth_ice40 -dsp -spram -top dla_ice40_top -json $OUT/$name.json; stat" >/dev/null 2>&1; then
    echo "   yosys failed (log: $OUT/$name.yosys.log)"; continue
  fi
  echo "   yosys: $((SECONDS - t0)) s; $(grep -E 'SB_LUT4|SB_DFF|SB_CARRY|SB_MAC16|SB_RAM40_4K|SB_SPRAM256KA' "$OUT/$name.yosys.log" | tail -6 | awk '{printf "%s %s  ", $1, $2}')"
  t0=$SECONDS
  if nextpnr-ice40 --up5k --package sg48 --pcf rtl/ice40/icebreaker.pcf --freq 12 --seed "$SEED" \
       --json "$OUT/$name.json" --asc "$OUT/$name.asc" >"$OUT/$name.nextpnr.log" 2>&1; then
    fmax=$(grep -E "Max frequency for clock" "$OUT/$name.nextpnr.log" | tail -1 | sed -E 's/.*: ([0-9.]+) MHz.*/\1/')
    echo "   nextpnr: $((SECONDS - t0)) s; $(util "$OUT/$name.nextpnr.log")"
    echo "   Fmax ${fmax} MHz (target 12 MHz)"
    if grep -q "FAIL" <(grep "Max frequency" "$OUT/$name.nextpnr.log" | tail -1); then
      echo "   timing NOT met"; continue
    fi
    icepack "$OUT/$name.asc" "$OUT/$name.bin"
    cp "$OUT/$name.bin" "$OUT/dla_ice40.bin"
    printf '{"array":"%sx%s","wmem_bytes":%s,"buf_bytes":%s,"acc_words":%s,"baud":%s,"clocks_per_bit":%s,"fmax_mhz":%s,"bitstream":"%s"}\n' \
      "$n" "$n" "$WMEM" "$BUF" "$ACC" "$BAUD" "$CPB" "$fmax" "$OUT/dla_ice40.bin" | tee "$OUT/summary.json"
    exit 0
  else
    echo "   nextpnr: does not fit / route ($((SECONDS - t0)) s): $(util "$OUT/$name.nextpnr.log")"
    grep -E "ERROR" "$OUT/$name.nextpnr.log" | head -2 | sed 's/^/   /'
  fi
done
echo "ice40.sh: no array size in '$ARRAYS' fits the iCE40UP5K with these memories"
exit 1
