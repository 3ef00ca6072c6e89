#!/usr/bin/env python3
# olmoe_reference.py TANDEM_BIN: OLMoE has no fixture with reference logits, so this test makes one. It writes a tiny
# OLMoE file with random F32 weights (`tandem model make --shape olmoe-tiny`), runs the fixtures' 16-token prompt
# through `tandem logits`, and computes the same logits here independently in float64 (pure Python: the GGUF file
# read from its bytes, attention with q/k RMS norms over all heads, NEOX rope, the router's softmax with the chosen
# weights kept as they are, SwiGLU experts). The NMSE must be float32's (1e-6), and the argmax equal everywhere. A
# router that renormalised its weights would land near 5e-4.
import math, os, struct, subprocess, sys, tempfile

PROMPT = [1, 403, 407, 261, 378, 436, 300, 290, 259, 268, 421, 375, 262, 266, 302, 431]

def read_gguf(path):
    data = open(path, 'rb').read()
    off = 0
    def take(fmt):
        nonlocal off
        v = struct.unpack_from('<' + fmt, data, off)
        off += struct.calcsize('<' + fmt)
        return v[0]
    def string():
        n = take('Q')
        nonlocal off
        s = data[off:off + n].decode('utf-8', 'replace')
        off += n
        return s
    scalar = {0: 'B', 1: 'b', 2: 'H', 3: 'h', 4: 'I', 5: 'i', 6: 'f', 7: '?', 10: 'Q', 11: 'q', 12: 'd'}
    def value(t):
        if t in scalar: return take(scalar[t])
        if t == 8: return string()
        if t == 9:
            et = take('I'); n = take('Q')
            return [value(et) for _ in range(n)]
        raise ValueError(t)
    assert data[:4] == b'GGUF'; off = 4
    version = take('I'); n_tensors = take('Q'); n_kv = take('Q')
    kv = {}
    for _ in range(n_kv):
        k = string(); t = take('I'); kv[k] = value(t)
    infos = []
    for _ in range(n_tensors):
        name = string(); nd = take('I'); ne = [take('Q') for _ in range(nd)]; t = take('I'); o = take('Q')
        infos.append((name, ne, t, o))
    align = kv.get('general.alignment', 32)
    start = (off + align - 1) // align * align
    tensors = {}
    for name, ne, t, o in infos:
        assert t == 0, 'F32 files only'
        n = 1
        for e in ne: n *= e
        vals = struct.unpack_from('<%df' % n, data, start + o)
        tensors[name] = (ne, vals)
    return kv, tensors

def matrix_rows(tensors, name):
    ne, vals = tensors[name]
    cols = ne[0]
    rows = len(vals) // cols
    return [vals[r * cols:(r + 1) * cols] for r in range(rows)]

def matvec(rows, x):
    return [math.fsum(a * b for a, b in zip(r, x)) for r in rows]

def rms_norm(x, w, eps):
    s = math.sqrt(math.fsum(v * v for v in x) / len(x) + eps)
    return [v / s * g for v, g in zip(x, w)]

def reference_logits(path, ids):
    kv, T = read_gguf(path)
    a = kv['general.architecture']
    n_embd = kv[a + '.embedding_length']; n_layer = kv[a + '.block_count']
    n_head = kv[a + '.attention.head_count']; n_kv = kv[a + '.attention.head_count_kv']
    eps = kv[a + '.attention.layer_norm_rms_epsilon']; base = kv[a + '.rope.freq_base']
    n_exp = kv[a + '.expert_count']; k_used = kv[a + '.expert_used_count']
    hd = kv.get(a + '.attention.key_length', n_embd // n_head)
    emb = matrix_rows(T, 'token_embd.weight')
    L = []
    for l in range(n_layer):
        p = 'blk.%d.' % l
        L.append({n: matrix_rows(T, p + n + '.weight') for n in
                  ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate_inp', 'ffn_gate_exps', 'ffn_up_exps',
                   'ffn_down_exps']})
        for n in ['attn_norm', 'ffn_norm', 'attn_q_norm', 'attn_k_norm']:
            L[l][n] = T[p + n + '.weight'][1]
    out_norm = T['output_norm.weight'][1]
    out = matrix_rows(T, 'output.weight')
    keys = [[] for _ in range(n_layer)]; vals = [[] for _ in range(n_layer)]
    logits = []
    for pos, tok in enumerate(ids):
        x = list(emb[tok])
        for l in range(n_layer):
            W = L[l]
            xn = rms_norm(x, W['attn_norm'], eps)
            q = rms_norm(matvec(W['attn_q'], xn), W['attn_q_norm'], eps)  # over all heads at once
            k = rms_norm(matvec(W['attn_k'], xn), W['attn_k_norm'], eps)
            v = matvec(W['attn_v'], xn)
            half = hd // 2
            for vec, nh in ((q, n_head), (k, n_kv)):  # NEOX rope: dimension i turns with i + half
                for h in range(nh):
                    for i in range(half):
                        th = pos * base ** (-2.0 * i / hd)
                        c, s = math.cos(th), math.sin(th)
                        x0, x1 = vec[h * hd + i], vec[h * hd + i + half]
                        vec[h * hd + i] = x0 * c - x1 * s
                        vec[h * hd + i + half] = x0 * s + x1 * c
            keys[l].append(k); vals[l].append(v)
            att = []
            for h in range(n_head):
                g = h // (n_head // n_kv)
                qh = q[h * hd:(h + 1) * hd]
                sc = [math.fsum(a_ * b_ for a_, b_ in zip(qh, kk[g * hd:(g + 1) * hd])) / math.sqrt(hd)
                      for kk in keys[l]]
                m = max(sc); e = [math.exp(s_ - m) for s_ in sc]; z = math.fsum(e)
                for d in range(hd):
                    att.append(math.fsum(e[j] / z * vals[l][j][g * hd + d] for j in range(len(e))))
            x = [a_ + b_ for a_, b_ in zip(x, matvec(W['attn_output'], att))]
            xn = rms_norm(x, W['ffn_norm'], eps)
            r = matvec(W['ffn_gate_inp'], xn)
            m = max(r); p = [math.exp(v_ - m) for v_ in r]; z = math.fsum(p); p = [v_ / z for v_ in p]
            chosen = sorted(range(n_exp), key=lambda e_: (-r[e_], e_))[:k_used]
            ff = len(W['ffn_gate_exps']) // n_exp
            y = [0.0] * n_embd
            for e_ in chosen:  # expert e's rows follow expert e-1's in the stacked tensors
                g_ = matvec(W['ffn_gate_exps'][e_ * ff:(e_ + 1) * ff], xn)
                u_ = matvec(W['ffn_up_exps'][e_ * ff:(e_ + 1) * ff], xn)
                h_ = [gv / (1 + math.exp(-gv)) * uv for gv, uv in zip(g_, u_)]
                d_ = matvec(W['ffn_down_exps'][e_ * n_embd:(e_ + 1) * n_embd], h_)
                y = [yy + p[e_] * dd for yy, dd in zip(y, d_)]
            x = [a_ + b_ for a_, b_ in zip(x, y)]
        logits.append(matvec(out, rms_norm(x, out_norm, eps)))
    return logits

def main():
    tandem = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        model, got_path = os.path.join(d, 'olmoe-tiny.gguf'), os.path.join(d, 'logits.f32')
        subprocess.run([tandem, 'model', 'make', '--shape', 'olmoe-tiny', '--type', 'f32', '-o', model], check=True)
        subprocess.run([tandem, 'logits', '-m', model, '--ids', ' '.join(map(str, PROMPT)), '-o', got_path, '-t', '2'],
                       check=True)
        want = reference_logits(model, PROMPT)
        raw = open(got_path, 'rb').read()
    n_vocab = len(want[0])
    got = struct.unpack('<%df' % (len(raw) // 4), raw)
    if len(got) != len(PROMPT) * n_vocab:
        sys.exit('olmoe_reference: %d logits, expected %d' % (len(got), len(PROMPT) * n_vocab))
    flat = [v for row in want for v in row]
    mean = math.fsum(flat) / len(flat)
    nmse = math.fsum((a_ - b_) ** 2 for a_, b_ in zip(got, flat)) / math.fsum((b_ - mean) ** 2 for b_ in flat)
    agree = sum(max(range(n_vocab), key=lambda i: got[t * n_vocab + i]) == max(range(n_vocab), key=lambda i: want[t][i])
                for t in range(len(PROMPT)))
    print('olmoe-tiny: NMSE against the float64 reference %.3g, argmax equal at %d/%d positions' %
          (nmse, agree, len(PROMPT)))
    sys.exit(0 if nmse <= 1e-6 and agree == len(PROMPT) else 1)

main()
