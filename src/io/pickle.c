/*
 * pickle.c -- a restricted unpickler: enough of Python's pickle (protocols 2-5, binary opcodes
 * only) to read the object a torch.save checkpoint holds, and nothing that can run code.
 *
 * Python's unpickler imports any module and calls any callable a pickle names (GLOBAL +
 * REDUCE), which is why torch.load on an untrusted file is arbitrary code execution. Here a
 * GLOBAL must be one of a fixed list (collections.OrderedDict, the torch._utils tensor/parameter
 * rebuild functions, the typed storage classes); any other name is refused with an error that
 * names it, before anything else happens. REDUCE never calls anything: it records the call
 * (function + arguments) as a value for torch.c to interpret, except OrderedDict() which
 * becomes an empty dict. BUILD (__setstate__) discards its state. Persistent ids (the storage
 * references) are kept as values too.
 *
 * Limits keep a hostile pickle from using unbounded memory or time: a memo index above
 * MEMO_MAX, a nesting depth above DEPTH_MAX, more than MARK_MAX open marks or a stack above
 * STACK_MAX are refused; every length is checked against the bytes that remain. Values live
 * until mer__pickle_free, so memo references and sharing need no reference counting, and a
 * container that contains itself is harmless because nothing walks the graph recursively.
 */
#include "io_internal.h"

#include <string.h>

#define MEMO_MAX (1 << 20)
#define DEPTH_MAX 256
#define MARK_MAX (1 << 16)
#define STACK_MAX (1 << 22)

static const struct {
    const char *module, *name;
    int id;
    mer_dtype dtype;
} allowed[] = {
    {"collections", "OrderedDict", MER__G_ODICT, MER_DTYPE_F32},
    {"torch._utils", "_rebuild_tensor_v2", MER__G_REBUILD_TENSOR_V2, MER_DTYPE_F32},
    {"torch._utils", "_rebuild_tensor", MER__G_REBUILD_TENSOR, MER_DTYPE_F32},
    {"torch._utils", "_rebuild_parameter", MER__G_REBUILD_PARAMETER, MER_DTYPE_F32},
    {"torch._utils", "_rebuild_parameter_with_state", MER__G_REBUILD_PARAMETER, MER_DTYPE_F32},
    {"torch", "FloatStorage", MER__G_STORAGE, MER_DTYPE_F32},
    {"torch", "HalfStorage", MER__G_STORAGE, MER_DTYPE_F16},
    {"torch", "BFloat16Storage", MER__G_STORAGE, MER_DTYPE_BF16},
    {"torch", "DoubleStorage", MER__G_STORAGE, MER_DTYPE_F64},
    {"torch", "LongStorage", MER__G_STORAGE, MER_DTYPE_I64},
    {"torch", "IntStorage", MER__G_STORAGE, MER_DTYPE_I32},
    {"torch", "ShortStorage", MER__G_STORAGE, MER_DTYPE_I16},
    {"torch", "CharStorage", MER__G_STORAGE, MER_DTYPE_I8},
    {"torch", "ByteStorage", MER__G_STORAGE, MER_DTYPE_U8},
    {"torch", "BoolStorage", MER__G_STORAGE, MER_DTYPE_BOOL},
};

void mer__pickle_free(mer__pickle *pk) {
    if (!pk) return;
    for (int64_t i = 0; i < pk->n_all; i++) {
        free(pk->all[i]->s);
        free(pk->all[i]->items);
        free(pk->all[i]);
    }
    free(pk->all);
    memset(pk, 0, sizeof *pk);
}

static mer__pv *pv_new(mer__pickle *pk, int kind) {
    if (pk->n_all == pk->cap_all) {
        int64_t nc = pk->cap_all ? pk->cap_all * 2 : 256;
        mer__pv **na = realloc(pk->all, (size_t)nc * sizeof *na);
        if (!na) return NULL;
        pk->all = na;
        pk->cap_all = nc;
    }
    mer__pv *v = calloc(1, sizeof *v);
    if (!v) return NULL;
    v->kind = kind;
    pk->all[pk->n_all++] = v;
    return v;
}

static int pv_push_item(mer__pv *c, mer__pv *item) {
    if (c->n == c->cap) {
        int64_t nc = c->cap ? c->cap * 2 : 4;
        mer__pv **ni = realloc(c->items, (size_t)nc * sizeof *ni);
        if (!ni) return 0;
        c->items = ni;
        c->cap = nc;
    }
    c->items[c->n++] = item;
    if (item->depth + 1 > c->depth) c->depth = item->depth + 1;
    return 1;
}

typedef struct {
    mer__pickle *pk;
    const uint8_t *b;
    size_t size, pos;
    mer__pv **stack;
    int64_t sp, scap;
    int64_t *marks;
    int64_t nmarks, mcap;
    mer__pv **memo;
    int64_t memo_cap, n_memoized;
} upk;

#define PATH (u->pk->path)

static mer_status nomem(upk *u) { return mer__err(MER_ERR_NOMEM, "%s: pickle: out of memory", PATH); }

static mer_status need(upk *u, size_t n, const char *what) {
    if (n > u->size - u->pos)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: truncated in %s at byte %zu", PATH, what, u->pos);
    return MER_OK;
}

static mer_status push(upk *u, mer__pv *v) {
    if (!v) return nomem(u);
    if (v->depth > DEPTH_MAX)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: objects nested deeper than %d levels", PATH, DEPTH_MAX);
    if (u->sp == u->scap) {
        if (u->scap >= STACK_MAX)
            return mer__err(MER_ERR_FORMAT, "%s: pickle: stack exceeds %d entries", PATH, STACK_MAX);
        int64_t nc = u->scap ? u->scap * 2 : 64;
        mer__pv **ns = realloc(u->stack, (size_t)nc * sizeof *ns);
        if (!ns) return nomem(u);
        u->stack = ns;
        u->scap = nc;
    }
    u->stack[u->sp++] = v;
    return MER_OK;
}

/* The bottom of the current mark frame: values below it may not be popped. */
static int64_t frame_base(const upk *u) { return u->nmarks ? u->marks[u->nmarks - 1] : 0; }

static mer_status pop(upk *u, mer__pv **v, const char *op) {
    if (u->sp <= frame_base(u))
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s on an empty stack at byte %zu", PATH, op, u->pos);
    *v = u->stack[--u->sp];
    return MER_OK;
}

static mer_status top(upk *u, mer__pv **v, const char *op) {
    if (u->sp <= frame_base(u))
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s on an empty stack at byte %zu", PATH, op, u->pos);
    *v = u->stack[u->sp - 1];
    return MER_OK;
}

static mer_status pop_mark(upk *u, int64_t *base, const char *op) {
    if (!u->nmarks) return mer__err(MER_ERR_FORMAT, "%s: pickle: %s without a MARK at byte %zu", PATH, op, u->pos);
    *base = u->marks[--u->nmarks];
    return MER_OK;
}

static mer_status memo_put(upk *u, uint64_t idx) {
    if (idx >= MEMO_MAX)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: memo index %llu exceeds the limit %d", PATH,
                        (unsigned long long)idx, MEMO_MAX);
    mer__pv *v;
    mer_status s = top(u, &v, "PUT");
    if (s) return s;
    if ((int64_t)idx >= u->memo_cap) {
        int64_t nc = u->memo_cap ? u->memo_cap : 64;
        while (nc <= (int64_t)idx) nc *= 2;
        mer__pv **nm = realloc(u->memo, (size_t)nc * sizeof *nm);
        if (!nm) return nomem(u);
        memset(nm + u->memo_cap, 0, (size_t)(nc - u->memo_cap) * sizeof *nm);
        u->memo = nm;
        u->memo_cap = nc;
    }
    u->memo[idx] = v;
    return MER_OK;
}

static mer_status memo_get(upk *u, uint64_t idx) {
    if ((int64_t)idx >= u->memo_cap || idx >= MEMO_MAX || !u->memo[idx])
        return mer__err(MER_ERR_FORMAT, "%s: pickle: memo index %llu was never stored", PATH, (unsigned long long)idx);
    return push(u, u->memo[idx]);
}

static mer_status push_str(upk *u, int kind, size_t len) {
    mer_status s = need(u, len, "a string");
    if (s) return s;
    mer__pv *v = pv_new(u->pk, kind);
    if (!v || !(v->s = malloc(len + 1))) return nomem(u);
    memcpy(v->s, u->b + u->pos, len);
    v->s[len] = '\0';
    v->len = len;
    u->pos += len;
    return push(u, v);
}

static mer_status push_int(upk *u, int64_t x) {
    mer__pv *v = pv_new(u->pk, MER__PV_INT);
    if (!v) return nomem(u);
    v->i = x;
    return push(u, v);
}

static mer_status global(upk *u, const char *mod, size_t ml, const char *name, size_t nl) {
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++) {
        if (strlen(allowed[i].module) == ml && !memcmp(allowed[i].module, mod, ml) &&
            strlen(allowed[i].name) == nl && !memcmp(allowed[i].name, name, nl)) {
            mer__pv *v = pv_new(u->pk, MER__PV_GLOBAL);
            if (!v) return nomem(u);
            v->glob = allowed[i].id;
            v->dtype = allowed[i].dtype;
            v->gname = allowed[i].name;
            return push(u, v);
        }
    }
    /* print the name without control bytes: it is attacker-chosen */
    char m[81], n[81];
    size_t a = ml < 80 ? ml : 80, c = nl < 80 ? nl : 80;
    for (size_t i = 0; i < a; i++) m[i] = mod[i] >= 0x20 && mod[i] < 0x7f ? mod[i] : '?';
    for (size_t i = 0; i < c; i++) n[i] = name[i] >= 0x20 && name[i] < 0x7f ? name[i] : '?';
    m[a] = n[c] = '\0';
    return mer__err(MER_ERR_FORMAT,
                    "%s: pickle: refusing global %s.%s (only tensors, storages and OrderedDict are allowed; "
                    "nothing was executed)",
                    PATH, m, n);
}

/* REDUCE / NEWOBJ: record the call; OrderedDict() becomes an empty dict. */
static mer_status reduce(upk *u, const char *op) {
    mer__pv *args = NULL, *fn = NULL;
    mer_status s;
    if ((s = pop(u, &args, op)) || (s = pop(u, &fn, op))) return s;
    if (fn->kind != MER__PV_GLOBAL)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s on something that is not an allowed global", PATH, op);
    if (args->kind != MER__PV_TUPLE)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s of %s with arguments that are not a tuple", PATH, op,
                        fn->gname);
    if (fn->glob == MER__G_ODICT) {
        if (args->n != 0)
            return mer__err(MER_ERR_FORMAT, "%s: pickle: OrderedDict called with arguments", PATH);
        return push(u, pv_new(u->pk, MER__PV_DICT));
    }
    if (fn->glob == MER__G_STORAGE)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s called directly (storages come only from persistent ids)",
                        PATH, fn->gname);
    mer__pv *v = pv_new(u->pk, MER__PV_CALL);
    if (!v) return nomem(u);
    v->fn = fn;
    v->args = args;
    v->depth = args->depth + 1;
    return push(u, v);
}

/* Collect stack[base..sp) into a new container (TUPLE/LIST) or pairs into a dict. */
static mer_status collect(upk *u, int64_t base, int kind, int pairs, const char *op) {
    if (pairs && (u->sp - base) % 2)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s with an odd number of items", PATH, op);
    mer__pv *c = pv_new(u->pk, kind);
    if (!c) return nomem(u);
    for (int64_t i = base; i < u->sp; i++)
        if (!pv_push_item(c, u->stack[i])) return nomem(u);
    u->sp = base;
    return push(u, c);
}

/* APPEND(S) / SETITEM(S): add stack[base..sp) to the container just below base. */
static mer_status extend(upk *u, int64_t base, int pairs, const char *op) {
    if (base - 1 < frame_base(u) || base > u->sp)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s without a container", PATH, op);
    mer__pv *c = u->stack[base - 1];
    int want = pairs ? MER__PV_DICT : MER__PV_LIST;
    if (c->kind != want)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s on a value that is not a %s", PATH, op,
                        pairs ? "dict" : "list");
    if (pairs && (u->sp - base) % 2)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: %s with an odd number of items", PATH, op);
    for (int64_t i = base; i < u->sp; i++)
        if (!pv_push_item(c, u->stack[i])) return nomem(u);
    u->sp = base;
    if (c->depth > DEPTH_MAX)
        return mer__err(MER_ERR_FORMAT, "%s: pickle: objects nested deeper than %d levels", PATH, DEPTH_MAX);
    return MER_OK;
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static mer_status run(upk *u, mer__pv **out) {
    mer_status s = MER_OK;
    for (;;) {
        if ((s = need(u, 1, "an opcode"))) return s;
        size_t at = u->pos;
        uint8_t op = u->b[u->pos++];
        switch (op) {
        case 0x80: /* PROTO */
            if ((s = need(u, 1, "PROTO"))) return s;
            if (u->b[u->pos] < 2 || u->b[u->pos] > 5)
                return mer__err(MER_ERR_UNSUPPORTED, "%s: pickle: protocol %u is not supported (2-5 are)", PATH,
                                u->b[u->pos]);
            u->pos++;
            break;
        case 0x95: /* FRAME: a length hint only */
            if ((s = need(u, 8, "FRAME"))) return s;
            u->pos += 8;
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *m = u->b + u->pos, *end = u->b + u->size;
            const uint8_t *nl1 = memchr(m, '\n', (size_t)(end - m));
            const uint8_t *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
            if (!nl2) return mer__err(MER_ERR_FORMAT, "%s: pickle: truncated GLOBAL at byte %zu", PATH, at);
            u->pos = (size_t)(nl2 + 1 - u->b);
            if ((s = global(u, (const char *)m, (size_t)(nl1 - m), (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1))))
                return s;
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            mer__pv *name, *mod;
            if ((s = pop(u, &name, "STACK_GLOBAL")) || (s = pop(u, &mod, "STACK_GLOBAL"))) return s;
            if (name->kind != MER__PV_STR || mod->kind != MER__PV_STR)
                return mer__err(MER_ERR_FORMAT, "%s: pickle: STACK_GLOBAL of non-strings", PATH);
            if ((s = global(u, mod->s, mod->len, name->s, name->len))) return s;
            break;
        }
        case 'q': /* BINPUT */
            if ((s = need(u, 1, "BINPUT")) || (s = memo_put(u, u->b[u->pos]))) return s;
            u->pos += 1;
            break;
        case 'r': /* LONG_BINPUT */
            if ((s = need(u, 4, "LONG_BINPUT")) || (s = memo_put(u, le32(u->b + u->pos)))) return s;
            u->pos += 4;
            break;
        case 0x94: /* MEMOIZE */
            if ((s = memo_put(u, (uint64_t)u->n_memoized))) return s;
            u->n_memoized++;
            break;
        case 'h': /* BINGET */
            if ((s = need(u, 1, "BINGET")) || (s = memo_get(u, u->b[u->pos]))) return s;
            u->pos += 1;
            break;
        case 'j': /* LONG_BINGET */
            if ((s = need(u, 4, "LONG_BINGET")) || (s = memo_get(u, le32(u->b + u->pos)))) return s;
            u->pos += 4;
            break;
        case '}': if ((s = push(u, pv_new(u->pk, MER__PV_DICT)))) return s; break;
        case ']': if ((s = push(u, pv_new(u->pk, MER__PV_LIST)))) return s; break;
        case ')': if ((s = push(u, pv_new(u->pk, MER__PV_TUPLE)))) return s; break;
        case 'N': if ((s = push(u, pv_new(u->pk, MER__PV_NONE)))) return s; break;
        case 0x88:
        case 0x89: {
            mer__pv *v = pv_new(u->pk, MER__PV_BOOL);
            if (v) v->i = op == 0x88;
            if ((s = push(u, v))) return s;
            break;
        }
        case '(': /* MARK */
            if (u->nmarks >= MARK_MAX)
                return mer__err(MER_ERR_FORMAT, "%s: pickle: more than %d nested MARKs", PATH, MARK_MAX);
            if (u->nmarks == u->mcap) {
                int64_t nc = u->mcap ? u->mcap * 2 : 16;
                int64_t *nm = realloc(u->marks, (size_t)nc * sizeof *nm);
                if (!nm) return nomem(u);
                u->marks = nm;
                u->mcap = nc;
            }
            u->marks[u->nmarks++] = u->sp;
            break;
        case 't': { /* TUPLE */
            int64_t base = 0;
            if ((s = pop_mark(u, &base, "TUPLE")) || (s = collect(u, base, MER__PV_TUPLE, 0, "TUPLE"))) return s;
            break;
        }
        case 'l': { /* LIST */
            int64_t base = 0;
            if ((s = pop_mark(u, &base, "LIST")) || (s = collect(u, base, MER__PV_LIST, 0, "LIST"))) return s;
            break;
        }
        case 'd': { /* DICT */
            int64_t base = 0;
            if ((s = pop_mark(u, &base, "DICT")) || (s = collect(u, base, MER__PV_DICT, 1, "DICT"))) return s;
            break;
        }
        case 0x85:
        case 0x86:
        case 0x87: { /* TUPLE1..3 */
            int64_t k = op - 0x84;
            if (u->sp - frame_base(u) < k)
                return mer__err(MER_ERR_FORMAT, "%s: pickle: TUPLE%d on a stack of %lld at byte %zu", PATH, (int)k,
                                (long long)(u->sp - frame_base(u)), at);
            if ((s = collect(u, u->sp - k, MER__PV_TUPLE, 0, "TUPLE"))) return s;
            break;
        }
        case 'a': /* APPEND */
            if ((s = extend(u, u->sp - 1, 0, "APPEND"))) return s;
            break;
        case 'e': { /* APPENDS */
            int64_t base = 0;
            if ((s = pop_mark(u, &base, "APPENDS")) || (s = extend(u, base, 0, "APPENDS"))) return s;
            break;
        }
        case 's': /* SETITEM */
            if ((s = extend(u, u->sp - 2, 1, "SETITEM"))) return s;
            break;
        case 'u': { /* SETITEMS */
            int64_t base = 0;
            if ((s = pop_mark(u, &base, "SETITEMS")) || (s = extend(u, base, 1, "SETITEMS"))) return s;
            break;
        }
        case 'J':
            if ((s = need(u, 4, "BININT"))) return s;
            if ((s = push_int(u, (int32_t)le32(u->b + u->pos)))) return s;
            u->pos += 4;
            break;
        case 'K':
            if ((s = need(u, 1, "BININT1"))) return s;
            if ((s = push_int(u, u->b[u->pos]))) return s;
            u->pos += 1;
            break;
        case 'M':
            if ((s = need(u, 2, "BININT2"))) return s;
            if ((s = push_int(u, u->b[u->pos] | u->b[u->pos + 1] << 8))) return s;
            u->pos += 2;
            break;
        case 0x8a: { /* LONG1: little-endian two's complement of n bytes */
            if ((s = need(u, 1, "LONG1"))) return s;
            size_t n = u->b[u->pos++];
            if ((s = need(u, n, "LONG1"))) return s;
            if (n > 8) { /* kept as raw bytes (the legacy format's magic number is 10 bytes) */
                if ((s = push_str(u, MER__PV_BIGINT, n))) return s;
                break;
            }
            uint64_t x = 0;
            for (size_t i = 0; i < n; i++) x |= (uint64_t)u->b[u->pos + i] << (8 * i);
            if (n && n < 8 && (u->b[u->pos + n - 1] & 0x80)) x |= ~(uint64_t)0 << (8 * n);
            u->pos += n;
            if ((s = push_int(u, (int64_t)x))) return s;
            break;
        }
        case 'G': { /* BINFLOAT, big-endian double */
            if ((s = need(u, 8, "BINFLOAT"))) return s;
            uint64_t x = 0;
            for (int i = 0; i < 8; i++) x = x << 8 | u->b[u->pos + i];
            u->pos += 8;
            mer__pv *v = pv_new(u->pk, MER__PV_FLOAT);
            if (v) memcpy(&v->f, &x, 8);
            if ((s = push(u, v))) return s;
            break;
        }
        case 'X': /* BINUNICODE */
        case 'T': /* BINSTRING */
        case 'B': /* BINBYTES */
            if ((s = need(u, 4, "a string length"))) return s;
            {
                uint32_t n = le32(u->b + u->pos);
                u->pos += 4;
                if ((s = push_str(u, op == 'B' ? MER__PV_BYTES : MER__PV_STR, n))) return s;
            }
            break;
        case 0x8c: /* SHORT_BINUNICODE */
        case 'U':  /* SHORT_BINSTRING */
        case 'C':  /* SHORT_BINBYTES */
            if ((s = need(u, 1, "a string length"))) return s;
            {
                size_t n = u->b[u->pos++];
                if ((s = push_str(u, op == 'C' ? MER__PV_BYTES : MER__PV_STR, n))) return s;
            }
            break;
        case 0x8d: /* BINUNICODE8 */
            if ((s = need(u, 8, "a string length"))) return s;
            {
                uint64_t n = (uint64_t)le32(u->b + u->pos) | (uint64_t)le32(u->b + u->pos + 4) << 32;
                u->pos += 8;
                if (n > u->size - u->pos)
                    return mer__err(MER_ERR_FORMAT, "%s: pickle: truncated in a string at byte %zu", PATH, u->pos);
                if ((s = push_str(u, MER__PV_STR, (size_t)n))) return s;
            }
            break;
        case 'R':
            if ((s = reduce(u, "REDUCE"))) return s;
            break;
        case 0x81: /* NEWOBJ */
            if ((s = reduce(u, "NEWOBJ"))) return s;
            break;
        case 'b': { /* BUILD: __setstate__ is not run; the state is dropped */
            mer__pv *st, *obj;
            if ((s = pop(u, &st, "BUILD")) || (s = top(u, &obj, "BUILD"))) return s;
            break;
        }
        case 'Q': { /* BINPERSID */
            mer__pv *pid;
            if ((s = pop(u, &pid, "BINPERSID"))) return s;
            mer__pv *v = pv_new(u->pk, MER__PV_PERSID);
            if (!v) return nomem(u);
            v->args = pid;
            v->depth = pid->depth + 1;
            if ((s = push(u, v))) return s;
            break;
        }
        case '0': { /* POP */
            mer__pv *v;
            if ((s = pop(u, &v, "POP"))) return s;
            break;
        }
        case '1': { /* POP_MARK */
            int64_t base = 0;
            if ((s = pop_mark(u, &base, "POP_MARK"))) return s;
            u->sp = base;
            break;
        }
        case '2': { /* DUP */
            mer__pv *v;
            if ((s = top(u, &v, "DUP")) || (s = push(u, v))) return s;
            break;
        }
        case '.': /* STOP */
            if (u->nmarks || u->sp != 1)
                return mer__err(MER_ERR_FORMAT, "%s: pickle: STOP with %lld values and %lld marks on the stack", PATH,
                                (long long)u->sp, (long long)u->nmarks);
            *out = u->stack[0];
            return MER_OK;
        default:
            return mer__err(MER_ERR_FORMAT, "%s: pickle: opcode 0x%02x at byte %zu is not allowed in a checkpoint",
                            PATH, op, at);
        }
    }
}

mer_status mer__pickle_load(mer__pickle *pk, const uint8_t *buf, size_t size, size_t *pos, mer__pv **out) {
    *out = NULL;
    upk u = {.pk = pk, .b = buf, .size = size, .pos = *pos};
    if (u.pos > size) return mer__err(MER_ERR_FORMAT, "%s: pickle: starts past the end", pk->path);
    mer_status s = run(&u, out);
    *pos = u.pos;
    free(u.stack);
    free(u.marks);
    free(u.memo);
    return s;
}
