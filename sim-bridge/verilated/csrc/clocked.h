// One Verilated top with its own context, the reset sequence and the clock
// tick: shared by shim.cpp (dla_sim_top) and uart_shim.cpp (dla_uart_top),
// so both tops come out of reset the same way.
#pragma once

#include "verilated.h"

template <class T>
struct Clocked {
    VerilatedContext ctx;
    T* top;

    // `idle` sets the top's inputs to their idle values; the top is then
    // held in reset (synchronous, active low) for four clocks and released.
    template <class Idle>
    Clocked(const char* name, Idle idle) {
        ctx.randReset(0);
        top = new T(&ctx, name);
        top->clk_i = 0;
        top->rst_ni = 0;
        idle(*top);
        for (int i = 0; i < 4; ++i) tick();
        top->rst_ni = 1;
        top->eval();
    }
    ~Clocked() {
        top->final();
        delete top;
    }
    Clocked(const Clocked&) = delete;
    Clocked& operator=(const Clocked&) = delete;

    // One rising edge.
    inline void tick() {
        top->clk_i = 0;
        top->eval();
        top->clk_i = 1;
        top->eval();
    }
};
