#!/usr/bin/env python3
"""An Arrow IPC stream reader written from the format spec, sharing no code
with llem (stdlib only: this machine has no pyarrow). Prints, as JSON, the
schema metadata and per device: rows, sum of valid power_w, last valid
energy_j. Used by cmd/llem-sample's tests to check the stream independently."""
import json
import struct
import sys


def u32(b, p): return struct.unpack_from("<I", b, p)[0]
def i32(b, p): return struct.unpack_from("<i", b, p)[0]
def u16(b, p): return struct.unpack_from("<H", b, p)[0]


def field(b, table, i):
    """Absolute position of table field i, or None (flatbuffers vtable)."""
    vt = table - i32(b, table)
    if 4 + 2 * i >= u16(b, vt):
        return None
    off = u16(b, vt + 4 + 2 * i)
    return table + off if off else None


def ref(b, p): return p + u32(b, p)  # follow a uoffset


def string(b, p):
    s = ref(b, p)
    return b[s + 4:s + 4 + u32(b, s)].decode()


def vector(b, p):
    v = ref(b, p)
    return v + 4, u32(b, v)


def main(path):
    data = open(path, "rb").read()
    pos, meta, devs, names = 0, {}, {}, None
    while pos + 8 <= len(data):
        if u32(data, pos) != 0xFFFFFFFF:
            raise SystemExit("no continuation marker at %d" % pos)
        mlen = i32(data, pos + 4)
        if mlen == 0:
            break  # end of stream (llem's trailer may follow; not read here)
        m = data[pos + 8:pos + 8 + mlen]
        body = pos + 8 + mlen
        msg = ref(m, 0)
        htype = m[field(m, msg, 1)]
        header = ref(m, field(m, msg, 2))
        bl = field(m, msg, 3)  # absent = 0 (the schema message has no body)
        blen = struct.unpack_from("<q", m, bl)[0] if bl is not None else 0
        if htype == 1:  # Schema
            fv, n = vector(m, field(m, header, 1))
            names = []
            for k in range(n):
                f = ref(m, fv + 4 * k)
                names.append(string(m, field(m, f, 0)))
            kv, n = vector(m, field(m, header, 2))
            for k in range(n):
                t = ref(m, kv + 4 * k)
                meta[string(m, field(m, t, 0))] = string(m, field(m, t, 1))
        elif htype == 3:  # RecordBatch
            lf = field(m, header, 0)
            length = struct.unpack_from("<q", m, lf)[0] if lf is not None else 0
            if length == 0:
                pos = body + blen
                continue
            bv, nb = vector(m, field(m, header, 2))
            bufs = [struct.unpack_from("<qq", m, bv + 16 * k) for k in range(nb)]
            # Buffers per column: t 2, source 3, device 3, then 2 each.
            layout, k = {}, 0
            for name in names:
                w = 3 if name in ("source", "device") else 2
                layout[name] = bufs[k:k + w]
                k += w
            def buf(name, j):
                off, ln = layout[name][j]
                return data[body + off:body + off + ln]
            def valid(name, i):
                v = buf(name, 0)
                return True if len(v) == 0 else bool(v[i >> 3] >> (i & 7) & 1)
            offs, chars = buf("device", 1), buf("device", 2)
            pw, ej = buf("power_w", 1), buf("energy_j", 1)
            for i in range(length):
                a, z = struct.unpack_from("<ii", offs, 4 * i)
                d = devs.setdefault(chars[a:z].decode(), {"rows": 0, "power_sum": 0.0, "energy_last": None})
                d["rows"] += 1
                if valid("power_w", i):
                    d["power_sum"] += struct.unpack_from("<d", pw, 8 * i)[0]
                if valid("energy_j", i):
                    d["energy_last"] = struct.unpack_from("<d", ej, 8 * i)[0]
        pos = body + blen
    json.dump({"meta": meta, "devices": devs}, sys.stdout)


main(sys.argv[1])
