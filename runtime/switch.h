/* SPDX-License-Identifier: MIT */
/*
 * switch.h - the one contract every context-switch implementation keeps.
 *
 * switch_context(from, to) saves the callee-saved registers of the running
 * context on its own stack, stores the resulting stack pointer in from->sp,
 * loads to->sp and pops the registers saved there, returning into whatever
 * called switch_context on that stack (or into the entry trampoline for a
 * context that never ran).  The value returned is the third argument of
 * the switch that resumed the context: the scheduler passes its worker,
 * so code resumed on another thread learns which one without reading
 * thread-local storage (a TLS address the compiler cached before the
 * switch would name the old thread's).  Only callee-saved registers are saved: the
 * switch is an ordinary function call to the compiler, so every
 * caller-saved register is already dead.  The floating-point control words
 * (MXCSR, x87 CW) are not saved, as in Go: a task that changes the rounding
 * mode changes it for the thread.
 *
 * Saved frame, x86-64 (System V), lowest address first, at from->sp:
 *
 *     sp+0   r15
 *     sp+8   r14
 *     sp+16  r13
 *     sp+24  r12       (for a fresh context: the task pointer)
 *     sp+32  rbx
 *     sp+40  rbp       <- a normal frame record: [saved rbp][return address]
 *     sp+48  return address into the caller of switch_context
 *
 * Because sp+40 is an ordinary frame record, the profiler walks a parked
 * task's stack by starting the frame-pointer chain at sp+40
 * (SWITCH_FRAME_OFFSET), with no knowledge of the register layout.
 *
 * aarch64 (switch_aarch64.S) keeps the same contract: x19-x28, fp, lr and
 * d8-d15 saved, with the fp/lr pair at SWITCH_FRAME_OFFSET.
 *
 * Invariants:
 *   - to->sp was produced by switch_context or by switch_init_stack;
 *   - a fresh stack is 16-byte aligned so that the trampoline calls its C
 *     entry with the ABI's alignment.
 */
#ifndef COPPER_RUNTIME_SWITCH_H
#define COPPER_RUNTIME_SWITCH_H

#include <stddef.h>
#include <stdint.h>

struct switch_ctx {
	void *sp; /* saved stack pointer; only valid while switched out */
};

#if defined(__x86_64__)
#define SWITCH_FRAME_OFFSET 40 /* [rbp][ret] frame record above sp */
#define SWITCH_SAVED_WORDS 7   /* six registers and the return address */
#elif defined(__aarch64__)
#define SWITCH_FRAME_OFFSET 160
#define SWITCH_SAVED_WORDS 22
#else
#error "Copper has no context switch for this architecture yet"
#endif

/* Defined in switch_<arch>.S.  Returns the resumer's `pass`. */
void *switch_context(struct switch_ctx *from, struct switch_ctx *to,
		     void *pass);
/* Entry of a fresh context: calls entry(arg) with the values planted by
 * switch_init_stack; entry must never return. */
void switch_trampoline(void);

/*
 * Prepares a fresh context whose stack ends (exclusive) at top, so that the
 * first switch_context into it calls entry(arg) through switch_trampoline
 * with a zero frame pointer (the end of every frame-pointer walk).
 */
static inline void switch_init_stack(struct switch_ctx *ctx, void *top,
				     void (*entry)(void *), void *arg)
{
	uintptr_t t = (uintptr_t)top & ~(uintptr_t)15;
	uintptr_t *sp;

#if defined(__x86_64__)
	/* After the final `ret` pops the trampoline address, rsp == t. */
	sp = (uintptr_t *)t - SWITCH_SAVED_WORDS;
	sp[0] = 0;                            /* r15 */
	sp[1] = 0;                            /* r14 */
	sp[2] = (uintptr_t)entry;             /* r13: the C entry */
	sp[3] = (uintptr_t)arg;               /* r12: its argument */
	sp[4] = 0;                            /* rbx */
	sp[5] = 0;                            /* rbp: ends the chain */
	sp[6] = (uintptr_t)switch_trampoline; /* return address */
#elif defined(__aarch64__)
	sp = (uintptr_t *)t - SWITCH_SAVED_WORDS;
	for (int i = 0; i < SWITCH_SAVED_WORDS; i++)
		sp[i] = 0;
	sp[0] = (uintptr_t)arg;                /* x19 */
	sp[1] = (uintptr_t)entry;              /* x20 */
	sp[21] = (uintptr_t)switch_trampoline; /* lr */
#endif
	ctx->sp = sp;
}

#endif /* COPPER_RUNTIME_SWITCH_H */
