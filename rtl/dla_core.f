// Source files of dla_core, one per line in compile order (package first),
// relative to rtl/. Consumers add their top after this list:
//   dla_sim_top.sv                                  (sim-bridge/verilated/build.rs)
//   dla_uart_rx.sv dla_uart_tx.sv dla_uart_top.sv   (board, build.rs)
//   + ice40/dla_ice40_top.sv                        (scripts/fpga/ice40.sh)
// Read by sim-bridge/verilated/build.rs, scripts/rtl-check and scripts/fpga/ice40.sh.
dla_pkg.sv
dla_crc16.sv
dla_ram_1r1w.sv
dla_ram_1rw.sv
dla_banked_ram.sv
dla_pe.sv
dla_array.sv
dla_frame_rx.sv
dla_req_check.sv
dla_mul_serial.sv
dla_tile_seq.sv
dla_reply_tx.sv
dla_core.sv
