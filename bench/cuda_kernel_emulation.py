"""NumPy emulations of the index arithmetic of csrc/cuda/tiled_mma.cu, tiled_fma.cu,
tiled_gemm.cu and few_rows.cu (a dev aid: it runs without a GPU, and checks the kernels' indexing, including
their reading of the PTX fragment layouts, not the hardware).

tiled_mma: for one block (CT column tiles starting at column c0) and one step, every warp's lanes
gather their A registers (16-byte loads of state rows), B registers (16-byte loads of the
W_y^T slice in shared memory) and accumulator slots exactly as the kernel indexes them;
the emulated mma.m16n8k16 places each register's two values where the PTX ISA says that
register sits in the 16 x 16 A, 16 x 8 B and 16 x 8 C tiles. The block's output columns
must equal h @ W_y[:, c0 : c0 + cols].

tiled_fma: for one block (COLS columns), every lane (rg, kq) of every warp accumulates
its rows' sums over its k, the 8 lanes of a row group reduce-scatter them level by level
as the kernel's shuffles do, and each lane's kept totals go to the partial-sum slots the
kernel writes.

few_rows: for every block of the grid (groups of rows, each in a cluster; 512 threads
or lean), every thread (part, j) takes its column and share of k by the kernel's Layout,
leaves its sums for every row of its group in the partial-sum slots, and the thread of
part b adds the group's row b's; the outputs must equal h @ W_y for all rows and columns.

    python bench/cuda_kernel_emulation.py
"""
import numpy as np

WARPS, CHUNK = 8, 32


def a_position(reg, g, q):
    """(row, k) of the first of the two values of A register `reg` of lane (g, q)."""
    return [(g, 2 * q), (g + 8, 2 * q), (g, 2 * q + 8), (g + 8, 2 * q + 8)][reg]


def b_position(reg, g, q):
    """(k, column) of the first of the two values of B register `reg` of lane (g, q)."""
    return [(2 * q, g), (2 * q + 8, g)][reg]


def c_position(slot, g, q):
    """(row, column) of accumulator slot `slot` of lane (g, q)."""
    return [(g, 2 * q), (g, 2 * q + 1), (g + 8, 2 * q), (g + 8, 2 * q + 1)][slot]


def mma(acc, a_regs, b_regs):
    """One m16n8k16 product: a_regs[lane] = 4 pairs, b_regs[lane] = 2 pairs."""
    A, B = np.zeros((16, 16)), np.zeros((16, 8))
    for lane in range(32):
        g, q = divmod(lane, 4)
        for reg, pair in enumerate(a_regs[lane]):
            r, k = a_position(reg, g, q)
            A[r, k:k + 2] = pair
        for reg, pair in enumerate(b_regs[lane]):
            k, n = b_position(reg, g, q)
            B[k:k + 2, n] = pair
    C = A @ B
    for lane in range(32):
        g, q = divmod(lane, 4)
        for slot in range(4):
            acc[lane][slot] += C[c_position(slot, g, q)]


def load8(row, k):
    """The kernel's load8: values k .. k+7, zeros past the row's end."""
    out = np.zeros(8)
    part = row[k:k + 8]
    out[:len(part)] = part
    return out


def emulate_block(h, W, CT, block):
    B, H = h.shape
    RT, cols = (B + 15) // 16, CT * 8
    c0 = block * cols
    ncols = min(cols, H - c0)
    chunks = (H + CHUNK - 1) // CHUNK
    w_t = np.zeros((cols, chunks * CHUNK))  # the W_y^T slice (its padding is irrelevant here)
    w_t[:ncols, :H] = W[:, c0:c0 + ncols].T
    rows = np.zeros((RT * 16, H))
    rows[:B] = h
    partial = np.zeros((WARPS, RT * 16, cols))
    for warp in range(WARPS):
        acc = {(rt, ct): [[0.0] * 4 for _ in range(32)] for rt in range(RT) for ct in range(CT)}
        for chunk in range(warp, chunks, WARPS):
            for rt in range(RT):
                for ct in range(CT):
                    for tile in range(2):  # the chunk's two k tiles: .x/.y, then .z/.w
                        a_regs, b_regs = [], []
                        for lane in range(32):
                            g, q = divmod(lane, 4)
                            k = chunk * CHUNK + 8 * q
                            lo = load8(rows[rt * 16 + g], k)      # 4 registers: x y z w
                            hi = load8(rows[rt * 16 + g + 8], k)
                            w = w_t[ct * 8 + g, k:k + 8]
                            x, y = (0, 2) if tile == 0 else (4, 6)  # element offsets of the pairs
                            a_regs.append([lo[x:x + 2], hi[x:x + 2], lo[y:y + 2], hi[y:y + 2]])
                            b_regs.append([w[x:x + 2], w[y:y + 2]])
                        mma(acc[rt, ct], a_regs, b_regs)
        for (rt, ct), lanes in acc.items():
            for lane in range(32):
                g, q = divmod(lane, 4)
                for slot in range(4):
                    r, n = c_position(slot, g, q)
                    partial[warp, rt * 16 + r, ct * 8 + n] = lanes[lane][slot]
    out = partial.sum(axis=0)[:B, :ncols]
    return np.abs(out - h @ W[:, c0:c0 + ncols]).max()


def emulate_fma_block(h, W, COLS, block):
    B, H = h.shape
    RT = (B + 15) // 16
    rows_total, R = RT * 16, RT * 16 // 4
    V = R * COLS
    c0 = block * COLS
    ncols = min(COLS, H - c0)
    chunks = (H + CHUNK - 1) // CHUNK
    w_t = np.zeros((COLS, chunks * CHUNK))
    w_t[:ncols, :H] = W[:, c0:c0 + ncols].T
    rows = np.zeros((rows_total, chunks * CHUNK))
    rows[:B, :H] = h
    partial = np.zeros((WARPS, rows_total, COLS))
    for warp in range(WARPS):
        acc = np.zeros((32, V))  # lane -> its sums, row i, column c at i * COLS + c
        for chunk in range(warp, chunks, WARPS):
            for lane in range(32):
                rg, kq = divmod(lane, 8)
                k = chunk * CHUNK + 4 * kq
                for i in range(R):
                    hv = rows[rg * R + i, k:k + 4]
                    for c in range(COLS):
                        acc[lane, i * COLS + c] += hv @ w_t[c, k:k + 4]
        for half, bit in ((V // 2, 4), (V // 4, 2), (V // 8, 1)):  # the shuffles
            new = acc.copy()
            for lane in range(32):
                partner = lane ^ bit
                upper = (lane % 8) & bit
                keep = acc[lane, half:2 * half] if upper else acc[lane, :half]
                # the partner sends the half it does not keep: the half this lane keeps
                sent = acc[partner, half:2 * half] if upper else acc[partner, :half]
                new[lane, :half] = keep + sent
            acc = new
        flat = partial[warp].reshape(-1)  # a view: rows x COLS, row-major
        for lane in range(32):
            rg, kq = divmod(lane, 8)
            start = rg * R * COLS + kq * (V // 8)  # the lane's float4 stores, contiguous
            flat[start:start + V // 8] = acc[lane, :V // 8]
    out = partial.sum(axis=0)[:B, :ncols]
    return np.abs(out - h @ W[:, c0:c0 + ncols]).max()


def gemm_plan(B, H, sms=132, smem_per_block=227 * 1024):
    """tiled_gemm.cu's gemm_plan (float32; an H200's SMs and shared memory by default):
    the (BM, BN, chunk) of the cheapest tiling by its model, or None."""
    best, best_cost = None, np.inf
    for BM, BN in [(16, 16), (16, 32), (32, 16), (32, 32), (64, 16), (64, 32)]:
        blocks = -(-B // BM) * -(-H // BN)
        if blocks > sms:
            continue
        parts, items = 256 // (BM // 4 * BN // 4), BM * BN // 256
        for chunk in range(min(-(-H // 64) * 64, 8 * 4 * 256 // BM), 63, -64):
            chunks = -(-H // chunk)
            floats = chunks * chunk * BN + 2 * chunk * (BM + 4) + parts * BM * BN + 4 * items * 256
            if floats * 4 + BM * 8 > smem_per_block:
                continue
            compute = BM * BN * chunks * chunk / 64 + 1000 + 200 * chunks
            cost = max(compute / 1.9, 4.0 * blocks * BM * H / 5000)
            if cost < best_cost:
                best, best_cost = (BM, BN, chunk), cost
    return best


def emulate_gemm_block(h, W, BM, BN, kc, block):
    """One block of tiled_gemm<BM, BN>: each chunk's quads copied (transposed) by the
    threads that load them, every slot of the copy written once; each thread's 4 x 4 tile
    over its part of k; the parts' sums in the partial layout the epilogue reads; the
    epilogue's items. Returns the error of the block's outputs against h @ W_y."""
    B, H = h.shape
    threads, HS = 256, BM + 4
    slice_threads = (BM // 4) * (BN // 4)
    parts = threads // slice_threads
    chunks, quads, per_part = (H + kc - 1) // kc, BM * kc // 4 // threads, kc // parts
    assert quads * 4 * threads == BM * kc and per_part * parts == kc
    row_blocks = (B + BM - 1) // BM
    r0, c0 = block % row_blocks * BM, block // row_blocks * BN
    ncols = min(BN, H - c0)
    w_s = np.zeros((chunks * kc, BN))
    w_s[:H, :ncols] = W[:, c0:c0 + ncols]
    w_flat = w_s.reshape(-1)
    partial = np.full(parts * BM * BN, np.nan)  # a slot no thread writes stays NaN
    acc = np.zeros((threads, 4, 4))
    for c in range(chunks):
        buf = np.full(kc * HS, np.nan)  # slots no quad writes stay NaN (the padding, never read)
        for tid in range(threads):
            for u in range(quads):
                q = tid + u * threads
                row, k = (q >> 1) % BM, 8 * (q // (2 * BM)) + 4 * (q & 1)
                for i in range(4):
                    kk = c * kc + k + i
                    slot = (k + i) * HS + row
                    assert np.isnan(buf[slot]), "two quads write one slot"
                    buf[slot] = h[r0 + row, kk] if r0 + row < B and kk < H else 0.0
        for tid in range(threads):
            part, t = divmod(tid, slice_threads)
            tc, tr = t % (BN // 4) * 4, t // (BN // 4) * 4
            for kk in range(per_part):
                hb = (part * per_part + kk) * HS + tr
                wb = (c * kc + part * per_part + kk) * BN + tc
                acc[tid] += np.outer(buf[hb:hb + 4], w_flat[wb:wb + 4])
    for tid in range(threads):
        part, t = divmod(tid, slice_threads)
        tc, tr = t % (BN // 4) * 4, t // (BN // 4) * 4
        for i in range(4):
            start = (part * BM + tr + i) * BN + tc
            partial[start:start + 4] = acc[tid, i]
    nrows = min(BM, B - r0)
    out = np.full((nrows, ncols), np.nan)
    items = (nrows * BN + threads - 1) // threads  # column_block::Epilogue, r0 = this block's
    for tid in range(threads):
        for n in range(items):
            o = tid + n * threads
            b, j = o // BN, o % BN
            if r0 + b < B and j < ncols:
                out[b, j] = sum(partial[(w * BM + b) * BN + j] for w in range(parts))
    return np.abs(out - h[r0:r0 + nrows] @ W[:, c0:c0 + ncols]).max()


def few_rows_layout(blocks, threads):
    """(kColumns, kParts, kPerThread) of few_rows.cu's Layout<BLOCKS, THREADS>."""
    columns = threads if threads <= 128 else 128 if blocks <= 2 else 64
    parts = threads // columns
    return columns, parts, blocks * columns // parts


def emulate_few_rows(h, W, blocks, threads, rows):
    """Every block x of the grid: groups of `rows` rows, each in a cluster of `blocks` of
    `threads` threads."""
    B, H = h.shape
    columns, parts, per_thread = few_rows_layout(blocks, threads)
    assert parts * per_thread == blocks * columns >= H and rows <= min(4, parts)
    groups = (B + rows - 1) // rows
    out = np.full((B, H), np.nan)
    for x in range(groups * blocks):
        rank, first = x % blocks, x // blocks * rows  # the cluster's rank and first row
        count = min(rows, B - first)
        partial = np.zeros((parts, rows, columns))
        for part in range(parts):
            k0 = part * per_thread
            for j in range(columns):
                c = rank * columns + j
                # registers: W_y[k0 + i, c], zero past H both ways
                w = np.array([W[k0 + i, c] if k0 + i < H and c < H else 0.0 for i in range(per_thread)])
                hk = np.zeros((rows, per_thread))  # the group's state, zeros past H and B
                valid = max(0, min(per_thread, H - k0))
                hk[:count, :valid] = h[first:first + count, k0:k0 + valid]
                partial[part, :, j] = hk @ w
        for row in range(count):  # part `row` finishes row first + row
            for j in range(columns):
                c = rank * columns + j
                if c < H:
                    assert np.isnan(out[first + row, c]), "two threads finish one output"
                    out[first + row, c] = partial[:, row, j].sum()
    return np.abs(out - h @ W).max()


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    # (B, H, column tiles or columns, block): partial chunks, H not a multiple of 8, two row
    # tiles, a last block with fewer columns than its tiles.
    for name, emulate, cases in [
            ("tiled_mma", emulate_block, [(20, 100, 2, 0), (20, 100, 2, 6), (5, 33, 1, 4), (32, 64, 4, 1),
                                          (16, 1760, 2, 109), (1, 17, 1, 2), (17, 257, 8, 4)]),
            ("tiled_fma", emulate_fma_block, [(20, 100, 8, 0), (20, 100, 16, 6), (5, 33, 8, 4),
                                              (32, 64, 16, 3), (16, 1760, 16, 109), (2, 17, 8, 2),
                                              (17, 257, 16, 16)])]:
        for B, H, width, block in cases:
            h, W = rng.standard_normal((B, H)), rng.standard_normal((H, H))
            err = emulate(h, W, width, block)
            print(f"{name} B={B} H={H} width={width} block={block}: max error {err:.1e}")
            assert err < 1e-9, f"the emulated {name} does not compute h @ W_y"
    # (B, H): the tiling gemm_plan picks on an H200 (all six tile shapes; chunks of 64 to
    # 448, odd multiples of 64 among them), its first block and its last (the last row block and
    # column block, partial where B and H are not multiples of the tile); H not a multiple
    # of 4 or of the chunk
    for B, H in [(16, 64), (40, 100), (70, 203), (33, 300), (20, 600), (40, 701), (60, 1700),
                 (129, 901), (256, 512), (64, 1024), (20, 1760), (16, 1760)]:
        BM, BN, kc = gemm_plan(B, H)
        h, W = rng.standard_normal((B, H)), rng.standard_normal((H, H))
        for block in (0, -(-B // BM) * -(-H // BN) - 1):
            err = emulate_gemm_block(h, W, BM, BN, kc, block)
            print(f"tiled_gemm B={B} H={H} tile={BM}x{BN} chunk={kc} block={block}: max error {err:.1e}")
            assert err < 1e-9, "the emulated tiled_gemm does not compute h @ W_y"
    # (B, H, rows per group): 512 threads and the block count few_rows.cu's blocks_for
    # gives for H; one group, several, a last group with fewer rows. Then the lean kernels
    # (lean_kernel: threads and blocks by H, one row per group) at and past their limits.
    wide = [(B, H, 1 if H <= 128 else 2 if H <= 256 else 8, 512, rows) for B, H, rows in
            [(1, 1, 1), (4, 100, 4), (3, 128, 4), (1, 129, 1), (2, 256, 2), (4, 257, 4), (1, 512, 1),
             (3, 300, 4), (5, 100, 1), (7, 200, 2), (9, 300, 4), (6, 64, 4)]]
    lean = [(B, H, 1 if H <= 128 else 2 if H <= 256 else 8, 64 if H <= 64 else 128 if H <= 128 else 256, 1)
            for B, H in [(1, 1), (3, 63), (2, 64), (2, 65), (1, 128), (3, 129), (2, 256), (2, 257), (1, 512)]]
    for B, H, blocks, threads, rows in wide + lean:
        h, W = rng.standard_normal((B, H)), rng.standard_normal((H, H))
        err = emulate_few_rows(h, W, blocks, threads, rows)
        print(f"few_rows B={B} H={H} blocks={blocks} threads={threads} rows={rows}: max error {err:.1e}")
        assert err < 1e-9, "the emulated few_rows does not compute h @ W_y"
