/*
 * few_rows_exchange.pml -- the state exchange of the "lean_async" variant of the few-rows
 * kernel (csrc/cuda/few_rows.cu), for the SPIN model checker. Run it with tools/spin/check.
 *
 * WHAT IT MODELS
 * A cluster of NB thread blocks runs a recurrence for STEPS steps. Each block holds the
 * whole state, double-buffered (h_s[0], h_s[1]), one slot per sending thread of the
 * cluster (slot = block * S + sender). Each block has, per buffer b, an mbarrier bar[b]
 * in its shared memory: an expected-arrival count (1), a pending-arrival counter, a
 * transaction count tx (expect_tx adds, complete_tx subtracts) and a phase. A phase
 * completes when pending == 0 and tx == 0: the phase flips and pending is reset to 1.
 * try_wait.parity(P) is true iff the phase of parity P has completed (phase bit != P).
 *
 * Threads per block: S senders (thread 0 is one) and R (0 or 1) non-sending readers (a
 * part >= ROWS, which reads the state but writes none of it). Per block, in order:
 *   setup: thread 0 initialises bar[0], bar[1] (count 1) and arms both with
 *          arrive.expect_tx(bar[b], E), E = (NB - 1) * S units (a unit: one remote
 *          store); then a cluster barrier of all threads of all blocks.
 *   step k = 0 .. STEPS-1, every thread:
 *     1. k >= 1: wait try_wait.parity(bar[k&1], ((k-1)>>1)&1); then thread 0 re-arms:
 *        arrive.expect_tx(bar[k&1], E) (also in the last step, where no data follows)
 *     2. read all of h_s[k&1]
 *     3. __syncthreads()
 *     4. senders: store their value for step k+1 into the local h_s[(k+1)&1] (plain
 *        store), and st.async it into every other block's h_s[(k+1)&1] with complete_tx
 *        of one unit on that block's bar[(k+1)&1]
 *     5. (output stores to global memory: not modelled)
 *     6. __syncthreads()
 *   then every thread: if STEPS > 0, wait try_wait.parity(bar[STEPS&1],
 *   ((STEPS-1)>>1)&1) (the last step's incoming stores have landed), and exit.
 * An st.async is in flight from its issue until it lands; each (destination, slot,
 * buffer) has its own in-flight cell, delivered by a Link process at any later time, in
 * any order relative to all other stores. Its data and its complete_tx land together.
 *
 * PROPERTIES (assertions; plus SPIN's invalid-end-state check)
 *   P1 every value a step reads is the one for that step: slot values are step numbers
 *      (the value for step v is written in step v-1; step 0 reads the initial state).
 *   P2 no store (local or remote) lands in h_s[b] of a block for step v while a thread
 *      of that block has not finished reading h_s[b] for step v-2; and it overwrites
 *      exactly the value for step v-2 (nothing unread is lost). Two st.asyncs in flight
 *      to one slot of one buffer at once are an error as well.
 *   P3 a complete_tx lands on the phase it is meant for (values for step v: phase
 *      (v-1)>>1 of bar[v&1]), and that phase was armed first: tx never goes negative
 *      (PTX tolerates a transiently negative tx; this protocol never relies on it).
 *      arrive.expect_tx only on a phase whose arrival is still pending.
 *   P4 nothing lands in a block that has exited (all its threads past the final wait).
 *   P5 no thread waits forever: every run ends with all threads exited and nothing in
 *      flight (SPIN reports any other end as an invalid end state). Every run is finite
 *      (STEPS bounds the threads, the Links only consume), so this is the liveness check.
 *
 * WHAT IT ABSTRACTS AWAY
 *   - The values computed: a slot holds the number of the step its value is for.
 *   - The PTX memory model: the wait's try_wait is taken as an acquire and complete_tx
 *     as a release of the st.async's data (data lands with, never after, its
 *     complete_tx), __syncthreads as a full barrier of the block; every other access is
 *     sequentially consistent. A read of a buffer is one atomic look at all its slots at
 *     the step's read point (a store landing during a longer real read is P2).
 *   - Output stores, p_t staging, rows and columns: not modelled. All senders of a block
 *     behave alike; the kernel's several rows per thread are one slot per sender.
 *   - Granularity: each of these is one atomic step of a thread, interleaved with all
 *     the others: the mbarrier wait; the re-arm; the read (all slots); marking the read
 *     finished; each arrival at and each passing of a __syncthreads; the local store;
 *     each st.async's issue; and the final wait together with the exit (exiting at the
 *     earliest moment is the strictest case for P4). Each landing (data + complete_tx,
 *     and the phase completing if it does) is one atomic step of a Link.
 *     COARSE (-DCOARSE, for the configurations too large otherwise) merges a thread's
 *     read, its marking the read finished and its arrival at (3) into one step, and its
 *     passing (3), local store, st.async issues and arrival at (6) into another: there
 *     is no wait between them, nothing else reads the __syncthreads counters, and a
 *     store may still land at any later moment, so merging should hide no violation
 *     (an argument, not a proof: check runs both granularities on the small
 *     configurations and the planted bugs, and they agree).
 *
 * CONFIGURATIONS (-D on spin's command line; tools/spin/check sets them)
 *   NB blocks (2 or 3), S senders per block (1 or 2), R readers per block (0 or 1),
 *   STEPS (1 .. 6: from 3 on both buffers are used at least twice; the final wait
 *   covers bar[1] and bar[0] with parity 0 (STEPS 1, 2), 1 (3, 4) and 0 again after the
 *   phases wrap (5, 6)). check runs 2x(1+1), 2x2 and 3x1 (NB x (S+R)) exhaustively by
 *   default, 2x(2+1), 3x(1+1) and 3x2 with --full.
 *
 * PLANTED BUGS (each -D switch plants one; tools/spin/check --bugs shows each is caught)
 *   BUG_WRONG_PARITY     the step wait waits on the other parity
 *   BUG_PARITY_OFF_BY_ONE the step wait uses (k>>1)&1, not ((k-1)>>1)&1
 *   BUG_NO_FINAL_WAIT    no wait after the loop
 *   BUG_FINAL_WRONG_BAR  the final wait on bar[(STEPS-1)&1], not bar[STEPS&1]
 *   BUG_SKIP_STORE       sender 0 of block 0 skips its store to block NB-1 in step 1
 *   BUG_REARM_OTHER      the re-arm arms bar[(k+1)&1], not bar[k&1]
 *   BUG_NO_INIT_ARM=b    setup does not arm bar[b]
 *   BUG_WAIT_STEP0       step 0 waits (parity ((0-1)>>1)&1 = 1) and re-arms too
 *   BUG_NO_SYNC3         no __syncthreads at point 3
 *   BUG_NO_SYNC6         no __syncthreads at point 6
 * Every bug is caught in the smallest configuration, 2x(1+1) with STEPS = 3 (and all
 * but BUG_PARITY_OFF_BY_ONE with STEPS = 2). Not every bug shows in every
 * configuration: without a non-sending reader (R = 0) BUG_NO_SYNC3 is harmless, as
 * a sender issues its st.asyncs after its own read, so no remote store for step k+1 can
 * land before every sender of the block has read step k-1; with one thread per block
 * (3x1) neither __syncthreads does anything.
 *
 * REACHABILITY PROBES (each -D asserts that something the protocol allows never happens;
 * check expects SPIN to find that it does, so that the passes are not vacuous)
 *   REACH_END            every thread of every block exits
 *   REACH_TWO_IN_FLIGHT  a sender's st.asyncs for two steps in flight to one block
 *   REACH_OVERLAP        a store for step v lands while a thread there has not yet
 *                        finished reading step v-1 (the double buffer is used as such)
 */

#ifndef NB
#define NB 2
#endif
#ifndef S
#define S 1
#endif
#ifndef R
#define R 0
#endif
#ifndef STEPS
#define STEPS 3
#endif

#define T     (S + R)          /* threads per block */
#define NSLOT (NB * S)         /* slots per buffer: one per sender of the cluster */
#define E     ((NB - 1) * S)   /* units a phase expects: the remote stores into a buffer */
#define NONE  255              /* no step's value (h_s[1] before its first store) */

/* h_s[b][slot] of block blk: the step its value is for. */
byte h[NB * 2 * NSLOT];
#define H(blk, b, slot) h[((blk) * 2 + (b)) * NSLOT + (slot)]

/* The st.async in flight to (dst, slot, b): the step its value is for, or NONE. */
byte fly[NB * NSLOT * 2];
#define FLY(dst, slot, b) fly[((dst) * NSLOT + (slot)) * 2 + (b)]

/* bar[b] of block blk: pending arrivals, tx count, and completed phases (its parity is
   the phase bit; the full count lets P3 name the phase a store is meant for). */
byte  pend[NB * 2];
short tx[NB * 2];
byte  ph[NB * 2];
#define BAR(blk, b) ((blk) * 2 + (b))

byte rd[NB * T];   /* per thread: the steps it has finished reading */
byte bs[NB];       /* per block: arrivals at __syncthreads so far */
byte exited[NB];   /* per block: threads exited */
byte setup;        /* arrivals at the cluster barrier */

/* The parity step k waits for. */
#if defined(BUG_WRONG_PARITY)
#define PARITY(k) ((((k) - 1) >> 1 & 1) ^ 1)
#elif defined(BUG_PARITY_OFF_BY_ONE)
#define PARITY(k) ((k) >> 1 & 1)
#else
#define PARITY(k) (((k) - 1) >> 1 & 1)
#endif

/* Whether step k waits (and thread 0 re-arms), and which barrier it re-arms. */
#ifdef BUG_WAIT_STEP0
#define WAITS(k) true
#else
#define WAITS(k) ((k) >= 1)
#endif
#ifdef BUG_REARM_OTHER
#define REARM(k) (((k) + 1) & 1)
#else
#define REARM(k) ((k) & 1)
#endif

/* COARSE: one atomic step from passing __syncthreads (3) to arriving at (6). */
#ifdef COARSE
#define COARSE_BEGIN atomic {
#define COARSE_END }
#else
#define COARSE_BEGIN
#define COARSE_END
#endif

/* Whether sender t of block blk skips its st.async to block r in step k. */
#ifdef BUG_SKIP_STORE
#define SKIPPED(blk, t, k, r) ((blk) == 0 && (t) == 0 && (k) == 1 && (r) == NB - 1)
#else
#define SKIPPED(blk, t, k, r) false
#endif

/* The ordinal of the __syncthreads at points 3 and 6 of step k (both counted from 1). */
#if defined(BUG_NO_SYNC3)
#define SYNC6(k) ((k) + 1)
#elif defined(BUG_NO_SYNC6)
#define SYNC3(k) ((k) + 1)
#else
#define SYNC3(k) (2 * (k) + 1)
#define SYNC6(k) (2 * (k) + 2)
#endif

/* A phase with no arrival pending and no tx outstanding completes. */
inline complete_if_done(blk, b) {
  if
  :: pend[BAR(blk, b)] == 0 && tx[BAR(blk, b)] == 0 ->
     ph[BAR(blk, b)]++; pend[BAR(blk, b)] = 1
  :: else -> skip
  fi
}

/* arrive.expect_tx(bar[b], E) by thread 0 of blk. */
inline arm(blk, b) {
  assert(pend[BAR(blk, b)] == 1);   /* P3: an arrival is pending on this phase */
  tx[BAR(blk, b)] = tx[BAR(blk, b)] + E;
  pend[BAR(blk, b)] = 0;
  complete_if_done(blk, b)
}

/* P2, before a store for step v lands in h_s[v&1][slot] of blk: every thread of blk has
   read step v-2 from that buffer, and the slot holds step v-2's value (or, before
   buffer 1's first store, none). */
inline may_store(blk, slot, v, u) {
  for (u : 0 .. T - 1) {
    assert(rd[(blk) * T + u] + 1 >= v);
#ifdef REACH_OVERLAP
    assert(rd[(blk) * T + u] >= v);
#endif
    skip
  }
  u = 0;
  assert(H(blk, (v) & 1, slot) == ((v) >= 2 -> (v) - 2 : NONE))
}

/* The st.async in flight to h_s[b][slot] of block d lands: its data, then (in the same
   atomic step) its complete_tx, which may complete the phase. */
inline land(d, slot, b, v, u) {
  v = FLY(d, slot, b);
  FLY(d, slot, b) = NONE;
  assert(exited[d] < T);                     /* P4 */
  may_store(d, slot, v, u);                  /* P2 */
  H(d, b, slot) = v;
  assert(ph[BAR(d, b)] == (v - 1) >> 1);     /* P3: the phase it is meant for */
  tx[BAR(d, b)]--;
  assert(tx[BAR(d, b)] >= 0);                /* P3: that phase was armed first */
  complete_if_done(d, b);
  v = 0
}

/* A Link delivers the st.asyncs to slot `slot` of block d, each at any time after its
   issue, in any order relative to all other stores. Idle is a valid end state. */
proctype Link(byte d; byte slot) {
  byte v, u;
end:
  do
  :: atomic { FLY(d, slot, 0) != NONE -> land(d, slot, 0, v, u) }
  :: atomic { FLY(d, slot, 1) != NONE -> land(d, slot, 1, v, u) }
  od
}

/* Thread t of block blk: a sender if t < S, else a reader. */
proctype Thread(byte blk; byte t) {
  byte k = 0, u = 0, r = 0;

  /* Setup. The buffers' initial values are set by init (h_s[0]: step 0's, h_s[1]:
     none); nothing can touch them or the barriers before the cluster barrier. */
  atomic {
    if
    :: t == 0 ->
       pend[BAR(blk, 0)] = 1; tx[BAR(blk, 0)] = 0; ph[BAR(blk, 0)] = 0;
       pend[BAR(blk, 1)] = 1; tx[BAR(blk, 1)] = 0; ph[BAR(blk, 1)] = 0;
#if !defined(BUG_NO_INIT_ARM) || BUG_NO_INIT_ARM != 0
       arm(blk, 0);
#endif
#if !defined(BUG_NO_INIT_ARM) || BUG_NO_INIT_ARM != 1
       arm(blk, 1);
#endif
       skip
    :: else -> skip
    fi;
    setup++
  }
  setup == NB * T;   /* cluster barrier */

  do
  :: k < STEPS ->
     /* 1. wait for this step's values (acquire) */
     if
     :: WAITS(k) -> (ph[BAR(blk, k & 1)] & 1) != PARITY(k)
     :: else -> skip
     fi;
     /* 1. thread 0 re-arms */
     if
     :: t == 0 && WAITS(k) -> atomic { arm(blk, REARM(k)) }
     :: else -> skip
     fi;
     /* 2. read h_s[k&1] (P1), then mark the read finished: a store landing in between
        is caught by P2 */
     d_step {
       for (u : 0 .. NSLOT - 1) {
         assert(H(blk, k & 1, u) == k)
       }
       u = 0
#ifdef COARSE
       ; rd[blk * T + t] = k + 1
#ifdef SYNC3
       ; bs[blk]++                /* 3. arrive */
#endif
#endif
     }
#ifndef COARSE
     rd[blk * T + t] = k + 1;
#ifdef SYNC3
     bs[blk]++;                   /* 3. arrive */
#endif
#endif
     COARSE_BEGIN
#ifdef SYNC3
     bs[blk] >= SYNC3(k) * T;     /* 3. all threads of the block have arrived */
#endif
     /* 4. senders: the local store, then an st.async to every other block */
     if
     :: t < S ->
        d_step {
          may_store(blk, blk * S + t, k + 1, u);
          H(blk, (k + 1) & 1, blk * S + t) = k + 1
        }
        for (r : 0 .. NB - 1) {
          if
          :: r == blk || SKIPPED(blk, t, k, r) -> skip
          :: else ->
             atomic {
               assert(FLY(r, blk * S + t, (k + 1) & 1) == NONE);   /* P2 */
#ifdef REACH_TWO_IN_FLIGHT
               assert(FLY(r, blk * S + t, k & 1) == NONE);
#endif
               FLY(r, blk * S + t, (k + 1) & 1) = k + 1
             }
          fi
        }
        r = 0
     :: else -> skip
     fi;
#ifdef SYNC6
     bs[blk]++                                     /* 6. arrive */
#else
     skip
#endif
     COARSE_END;
#ifdef SYNC6
     atomic { bs[blk] >= SYNC6(k) * T -> k++ }     /* 6. */
#else
     k++
#endif
  :: else -> break
  od;

  /* The last step's incoming stores have landed; exit. */
  atomic {
#if !defined(BUG_NO_FINAL_WAIT)
#ifdef BUG_FINAL_WRONG_BAR
    STEPS == 0 || (ph[BAR(blk, (STEPS - 1) & 1)] & 1) != ((STEPS - 1) >> 1 & 1);
#else
    STEPS == 0 || (ph[BAR(blk, STEPS & 1)] & 1) != ((STEPS - 1) >> 1 & 1);
#endif
#endif
    exited[blk]++;
#ifdef REACH_END
    for (u : 0 .. NB - 1) { r = r + exited[u] }
    assert(r != NB * T);
#endif
    skip
  }
}

init {
  byte i, j;
  atomic {
    for (i : 0 .. NB - 1) {
      for (j : 0 .. NSLOT - 1) {
        H(i, 0, j) = 0;
        H(i, 1, j) = NONE;
        FLY(i, j, 0) = NONE;
        FLY(i, j, 1) = NONE
      }
    }
    for (i : 0 .. NB - 1) {
      for (j : 0 .. T - 1) {
        run Thread(i, j)
      }
    }
    for (i : 0 .. NB - 1) {
      for (j : 0 .. NSLOT - 1) {
        if
        :: j / S != i -> run Link(i, j)
        :: else -> skip
        fi
      }
    }
  }
}
