// One Verilated top with its own context, the reset sequence and the clock
// tick: shared by shim.cpp (dla_sim_top) and uart_shim.cpp (dla_uart_top),
// so both tops come out of reset the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "verilated.h"

// Hand out up to n of a model's output bytes (out[pos..] not yet read) into
// buf, in order; the queue empties itself once everything was read.
inline size_t take_output(std::vector<uint8_t>& out, size_t& pos, uint8_t* buf, size_t n) {
    const size_t have = out.size() - pos;
    const size_t k = n < have ? n : have;
    std::memcpy(buf, out.data() + pos, k);
    pos += k;
    if (pos == out.size()) {
        out.clear();
        pos = 0;
    }
    return k;
}

template <class T>
struct Clocked {
    VerilatedContext ctx;
    T* top;

    // `idle` sets the top's inputs to their idle values; the top is then
    // held in reset (synchronous, active low) for four clocks and released.
    template <class Idle>
    Clocked(const char* name, Idle idle) {
#ifdef FAULTLOOP_XRAND
        // Feature xrand (build.rs): random initial values, seeded from
        // FAULTLOOP_XSEED (default 1), like +verilator+rand+reset+2
        // +verilator+seed+N.
        const char* seed = std::getenv("FAULTLOOP_XSEED");
        ctx.randReset(2);
        ctx.randSeed(seed && *seed ? std::atoi(seed) : 1);
#else
        ctx.randReset(0);
#endif
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
