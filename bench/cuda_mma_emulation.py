import numpy as np
rng = np.random.default_rng(0)
def emulate(B, H, col_tiles, j):
    W = rng.standard_normal((H, H)); h = rng.standard_normal((B, H))
    row_tiles=(B+15)//16; k_padded=(H+15)//16*16; stride=k_padded+8
    cols=col_tiles*8; c0=j*cols; ncols=min(cols, H-c0); rows=row_tiles*16
    w_s=np.zeros(cols*stride); h_s=np.zeros(rows*stride)
    for i in range(H*ncols):
        k=i//ncols; n=i-k*ncols; w_s[n*stride+k]=W[k, c0+n]
    for b in range(B): h_s[b*stride:b*stride+H]=h[b]
    kWarps=8; k_warps=kWarps//col_tiles; k_tiles=k_padded//16
    partial=np.zeros(kWarps*rows*cols)
    for warp in range(8):
        col_tile=warp%col_tiles; k_part=warp//col_tiles
        for rt in range(row_tiles):
            acc=np.zeros((32,4))
            for kt in range(k_part, k_tiles, k_warps):
                k16=kt*16
                # assemble A (16x16) and B (16x8) per the PTX fragment layout from lane loads
                A=np.zeros((16,16)); Bm=np.zeros((16,8))
                for lane in range(32):
                    g,q=lane//4,lane%4
                    a_row0=(rt*16+g)*stride+2*q; a_row8=a_row0+8*stride
                    b_col=(col_tile*8+g)*stride+2*q
                    regs=[(a_row0+k16),(a_row8+k16),(a_row0+k16+8),(a_row8+k16+8)]
                    # reg r holds two consecutive elements; layout positions:
                    pos=[(g,2*q),(g+8,2*q),(g,2*q+8),(g+8,2*q+8)]
                    for r,(ri,ci) in zip(regs,pos):
                        A[ri,ci]=h_s[r]; A[ri,ci+1]=h_s[r+1]
                    bregs=[b_col+k16, b_col+k16+8]; bpos=[(2*q,g),(2*q+8,g)]
                    for r,(ki,ni) in zip(bregs,bpos):
                        Bm[ki,ni]=w_s[r]; Bm[ki+1,ni]=w_s[r+1]
                C=A@Bm
                for lane in range(32):
                    g,q=lane//4,lane%4
                    acc[lane]+= [C[g,2*q],C[g,2*q+1],C[g+8,2*q],C[g+8,2*q+1]]
            for lane in range(32):
                g,q=lane//4,lane%4
                base=(k_part*rows+rt*16)*cols+col_tile*8
                partial[base+g*cols+2*q]=acc[lane][0]; partial[base+g*cols+2*q+1]=acc[lane][1]
                partial[base+(g+8)*cols+2*q]=acc[lane][2]; partial[base+(g+8)*cols+2*q+1]=acc[lane][3]
    out=np.zeros((B,ncols))
    for o in range(B*cols):
        b=o//cols; jj=o-b*cols
        if jj>=ncols: continue
        out[b,jj]=sum(partial[(w*rows+b)*cols+jj] for w in range(k_warps))
    ref=h@W[:,c0:c0+ncols]
    return np.abs(out-ref).max()
for B,H,ct,j in [(20,100,2,0),(20,100,2,6),(5,33,1,4),(32,64,4,1),(16,1760,2,109),(1,17,1,2)]:
    print(B,H,ct,j, emulate(B,H,ct,j))
