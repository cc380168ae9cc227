# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
# distutils: language = c++
"""Compiled scheduler kernels: the C++/Cython twin of ``_sched_py``.

Interface and every observable behaviour (orders, return values, exception
types and messages) match the pure twin, which is the specification. State is
kept in compact open-addressing hash tables, per-lane ring buffers, an
index-linked edge pool and a binary heap of structs, so the hot loops touch
Python objects only at the call boundary. At realistic sizes (100k entries)
these kernels are bound by cache misses, hence the compact slots, the
locality-preserving hash and the prefetching.

Re-entrancy: Python code can run only while arguments are converted (e.g. an
``__index__`` method) or in ``Mapping.get`` during ``partition_batch``; every
method converts its input before mutating, and results are built either
before or after mutation using ints only (which never trigger the cyclic GC).
"""

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_Check, PyFloat_CheckExact
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport (
    PyLong_AsLongLongAndOverflow,
    PyLong_Check,
    PyLong_CheckExact,
    PyLong_FromLongLong,
    PyLong_FromSsize_t,
)
from cpython.dict cimport PyDict_CheckExact
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.number cimport PyNumber_Index
from cpython.ref cimport Py_INCREF, PyObject
from cpython.tuple cimport PyTuple_CheckExact
from libc.limits cimport LLONG_MAX, LLONG_MIN
from libc.string cimport memcpy, memset
from libcpp.vector cimport vector

__all__ = ["ReadyQueue", "TimerHeap", "WaiterIndex", "partition_batch"]

ctypedef long long ll

cdef extern from *:
    """
    /* Mix two non-negative 62-bit ids into a table index (low bits used). */
    static inline size_t statek_mix(long long a, long long b) {
        unsigned long long h = (unsigned long long)a * 0x9E3779B97F4A7C15ULL;
        h ^= (unsigned long long)b * 0xC2B2AE3D27D4EB4FULL + (h >> 29);
        h ^= h >> 32;
        return (size_t)h;
    }
    /* Single-key hash: runs of 8 consecutive ids share one randomly placed
       block of 8 slots, so sequentially allocated ids (the common case)
       stay cache-local, while strided or random ids still spread out. */
    static inline size_t statek_hash1(long long a) {
        return (statek_mix(a >> 3, 0) << 3) | (size_t)(a & 7);
    }
    """
    size_t statek_mix(ll a, ll b) noexcept nogil
    size_t statek_hash1(ll a) noexcept nogil

cdef extern from *:
    """
    /* Hint the cache about a slot we will touch a few iterations later. */
    #if defined(__GNUC__) || defined(__clang__)
    #define STATEK_PREFETCH(p) __builtin_prefetch((const void *)(p))
    #else
    #define STATEK_PREFETCH(p) ((void)0)
    #endif
    """
    void STATEK_PREFETCH(const void* p) noexcept nogil

cdef ll ID_LIMIT = (<ll>1) << 62
# Same (unobservable) lazy-deletion compaction slack as the pure twin.
cdef ll COMPACT_SLACK = 64
# How many pops/inserts ahead hash slots are prefetched; hides DRAM latency.
cdef int PREFETCH_AHEAD = 8


# --------------------------------------------------------------------------
# argument conversion (error texts are shared with _sched_py)
# --------------------------------------------------------------------------

cdef ll _id(object x, str what) except -1:
    cdef int overflow = 0
    cdef ll v
    if not PyLong_CheckExact(x):
        x = PyNumber_Index(x)
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow != 0 or v < 0 or v >= ID_LIMIT:
        raise ValueError(f"{what} must be in range(0, 2**62), got {x}")
    return v


cdef inline ll _fast_id(object x) noexcept:
    """Exact in-range int -> value, else -1 (caller then takes the slow path)."""
    cdef int overflow = 0
    cdef ll v
    if not PyLong_CheckExact(x):
        return -1
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow != 0 or v < 0 or v >= ID_LIMIT:
        return -1
    return v


cdef inline ll _id_at(object x, str what, Py_ssize_t i) except -1:
    cdef ll v = _fast_id(x)
    if v >= 0:
        return v
    return _id(x, f"{what}[{i}]")


cdef ll _count(object x, str what) except -1:
    cdef int overflow = 0
    cdef ll v
    if not PyLong_CheckExact(x):
        x = PyNumber_Index(x)
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow > 0:
        return LLONG_MAX
    if overflow < 0 or v < 0:
        raise ValueError(f"{what} must be >= 0, got {x}")
    return v


cdef ll _limit(object x) except? -2:
    """pop_due limit: any int; negative means unlimited (-1)."""
    cdef int overflow = 0
    cdef ll v
    if not PyLong_CheckExact(x):
        x = PyNumber_Index(x)
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow > 0:
        return LLONG_MAX
    if overflow < 0 or v < 0:
        return -1
    return v


cdef ll _clamped(object x) except? -1:
    """partition_batch threshold: any int, clamped to the long long range."""
    cdef int overflow = 0
    cdef ll v
    if not PyLong_CheckExact(x):
        x = PyNumber_Index(x)
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow > 0:
        return LLONG_MAX
    if overflow < 0:
        return LLONG_MIN
    return v


cdef double _time(object x, str what) except? -1.0:
    cdef double v
    if PyFloat_CheckExact(x):
        v = PyFloat_AS_DOUBLE(x)
    elif PyLong_Check(x) or PyFloat_Check(x):
        try:
            v = float(x)
        except OverflowError:
            raise ValueError(f"{what} is too large to convert to float") from None
    else:
        raise TypeError(
            f"{what} must be a real number (int or float), not {type(x).__name__}"
        )
    if v != v:
        raise ValueError(f"{what} must not be NaN")
    return v


cdef int _lookup(object x, ll* out) except -1:
    """__contains__ helper: 1 and the id if x is a valid id, else 0."""
    cdef int overflow = 0
    cdef ll v
    if not PyLong_CheckExact(x):
        try:
            x = PyNumber_Index(x)
        except TypeError:
            return 0
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow != 0 or v < 0 or v >= ID_LIMIT:
        return 0
    out[0] = v
    return 1


cdef int _collect_ids(object values, str what, vector[ll]& out) except -1:
    """Validate a whole batch first so a bad item leaves the structure untouched.

    A tuple snapshot keeps the items alive even if an ``__index__`` method
    mutates the caller's list.
    """
    cdef tuple items = values if PyTuple_CheckExact(values) else tuple(values)
    cdef Py_ssize_t i, n = len(items)
    out.reserve(n)
    for i in range(n):
        out.push_back(_id_at(items[i], what, i))
    return 0


cdef list _ll_list(const ll* data, Py_ssize_t n):
    cdef list out = PyList_New(n)
    cdef Py_ssize_t i
    cdef object o
    for i in range(n):
        o = PyLong_FromLongLong(data[i])
        Py_INCREF(o)
        PyList_SET_ITEM(out, i, o)
    return out


cdef object _no_pickle(object obj):
    return TypeError(
        f"cannot pickle {type(obj).__name__!r} object: "
        "scheduler state is rebuilt from durable storage, not serialized"
    )


# --------------------------------------------------------------------------
# open-addressing hash tables: linear probing, tombstones, 24-byte slots
#
# A single-key table is keyed by `a` alone and carries two payload words
# (b, v); a paired table is keyed by (a, b) and carries v. Compact slots keep
# more of a 100k-entry table in cache, which is what bounds these kernels.
# --------------------------------------------------------------------------

cdef enum:
    EMPTY = -1
    TOMB = -2

cdef struct Slot:
    ll a        # key (>= 0), or EMPTY / TOMB
    ll b        # second key part (paired) or payload (single-key)
    ll v        # payload

cdef struct Table:
    Slot* slots
    size_t mask
    Py_ssize_t size     # live entries
    Py_ssize_t fill     # live entries + tombstones
    bint paired


cdef inline size_t _cap_for(Py_ssize_t n) noexcept nogil:
    """Smallest power of two >= 8 keeping the load factor at or below 1/2."""
    cdef size_t cap = 8
    while cap < <size_t>(2 * n):
        cap <<= 1
    return cap


cdef int tbl_alloc(Table* t, size_t cap, bint paired) except -1:
    cdef Slot* s = <Slot*>PyMem_Malloc(cap * sizeof(Slot))
    cdef size_t i
    if s == NULL:
        raise MemoryError()
    for i in range(cap):
        s[i].a = EMPTY
    t.slots = s
    t.mask = cap - 1
    t.size = 0
    t.fill = 0
    t.paired = paired
    return 0


cdef int tbl_rehash(Table* t, size_t cap) noexcept:
    """Rebuild into `cap` slots; returns -1 (no exception set) if out of memory."""
    cdef Slot* new = <Slot*>PyMem_Malloc(cap * sizeof(Slot))
    cdef Slot* old = t.slots
    cdef size_t oldcap = t.mask + 1
    cdef size_t i, j, mask = cap - 1
    if new == NULL:
        return -1
    for i in range(cap):
        new[i].a = EMPTY
    for i in range(oldcap):
        if old[i].a >= 0:
            if t.paired:
                j = statek_mix(old[i].a, old[i].b) & mask
            else:
                j = statek_hash1(old[i].a) & mask
            while new[j].a != EMPTY:
                j = (j + 1) & mask
            new[j] = old[i]
    t.slots = new
    t.mask = mask
    t.fill = t.size
    PyMem_Free(old)
    return 0


cdef inline int tbl_reserve(Table* t, Py_ssize_t extra) except -1:
    """Guarantee that `extra` inserts will not need to rehash (load <= 3/4)."""
    if <size_t>(t.fill + extra) * 4 > (t.mask + 1) * 3:
        if tbl_rehash(t, _cap_for(t.size + extra)) < 0:
            raise MemoryError()
    return 0


cdef inline void tbl_shrink(Table* t) noexcept:
    """Best effort: give memory back once the table is mostly empty."""
    if t.mask >= 64 and <size_t>t.size * 8 < t.mask + 1:
        tbl_rehash(t, _cap_for(t.size))


cdef inline Slot* find1(Table* t, ll a) noexcept nogil:
    cdef size_t i = statek_hash1(a) & t.mask
    cdef Slot* s
    while True:
        s = t.slots + i
        if s.a == a:
            return s
        if s.a == EMPTY:
            return NULL
        i = (i + 1) & t.mask


cdef inline void prefetch1(Table* t, ll a) noexcept nogil:
    STATEK_PREFETCH(t.slots + (statek_hash1(a) & t.mask))


cdef inline Slot* find2(Table* t, ll a, ll b) noexcept nogil:
    cdef size_t i = statek_mix(a, b) & t.mask
    cdef Slot* s
    while True:
        s = t.slots + i
        if s.a == a and s.b == b:
            return s
        if s.a == EMPTY:
            return NULL
        i = (i + 1) & t.mask


cdef inline Slot* _claim(Table* t, Slot* s, Slot* tomb, ll a, ll b) noexcept nogil:
    if tomb != NULL:
        s = tomb
    else:
        t.fill += 1
    s.a = a
    s.b = b
    s.v = 0
    t.size += 1
    return s


cdef inline Slot* put1(Table* t, ll a, bint* created) noexcept nogil:
    """Find-or-insert into a reserved single-key table; new slots have b = v = 0."""
    cdef size_t i = statek_hash1(a) & t.mask
    cdef Slot* s
    cdef Slot* tomb = NULL
    while True:
        s = t.slots + i
        if s.a == a:
            created[0] = False
            return s
        if s.a == EMPTY:
            break
        if s.a == TOMB and tomb == NULL:
            tomb = s
        i = (i + 1) & t.mask
    created[0] = True
    return _claim(t, s, tomb, a, 0)


cdef inline Slot* put2(Table* t, ll a, ll b, bint* created) noexcept nogil:
    """Find-or-insert into a reserved paired table; new slots have v = 0."""
    cdef size_t i = statek_mix(a, b) & t.mask
    cdef Slot* s
    cdef Slot* tomb = NULL
    while True:
        s = t.slots + i
        if s.a == a and s.b == b:
            created[0] = False
            return s
        if s.a == EMPTY:
            break
        if s.a == TOMB and tomb == NULL:
            tomb = s
        i = (i + 1) & t.mask
    created[0] = True
    return _claim(t, s, tomb, a, b)


cdef inline void tbl_erase(Table* t, Slot* s) noexcept nogil:
    # A slot followed by an empty one ends every probe chain through it, so it
    # can become empty instead of a tombstone.
    cdef size_t i = <size_t>(s - t.slots)
    if t.slots[(i + 1) & t.mask].a == EMPTY:
        s.a = EMPTY
        t.fill -= 1
    else:
        s.a = TOMB
    t.size -= 1


cdef inline ll _d2ll(double d) noexcept nogil:
    cdef ll x
    memcpy(&x, &d, sizeof(ll))
    return x


cdef inline double _ll2d(ll x) noexcept nogil:
    cdef double d
    memcpy(&d, &x, sizeof(double))
    return d


# --------------------------------------------------------------------------
# ReadyQueue
# --------------------------------------------------------------------------

cdef struct REntry:
    ll job
    ll seq      # unique per push: the entry is live iff _jobs maps job -> seq

cdef struct RLane:
    ll lane     # lane id
    ll live     # live entries (stale ones are skipped when popped)
    ll rprev    # ring links (lanes with live jobs, in service order)
    ll rnext    # also the free-list link
    REntry* buf # circular buffer, capacity a power of two (or 0)
    size_t cap
    size_t head
    size_t size


cdef int _lane_push(RLane* L, ll job, ll seq) except -1:
    cdef size_t i, cap
    cdef REntry* buf
    if L.size == L.cap:
        cap = L.cap * 2 if L.cap else 4
        buf = <REntry*>PyMem_Malloc(cap * sizeof(REntry))
        if buf == NULL:
            raise MemoryError()
        for i in range(L.size):
            buf[i] = L.buf[(L.head + i) & (L.cap - 1)]
        PyMem_Free(L.buf)
        L.buf = buf
        L.cap = cap
        L.head = 0
    i = (L.head + L.size) & (L.cap - 1)
    L.buf[i].job = job
    L.buf[i].seq = seq
    L.size += 1
    return 0


cdef inline REntry _lane_pop(RLane* L) noexcept nogil:
    cdef REntry e = L.buf[L.head]
    L.head = (L.head + 1) & (L.cap - 1)
    L.size -= 1
    return e


cdef inline void _lane_release(RLane* L) noexcept:
    PyMem_Free(L.buf)
    L.buf = NULL
    L.cap = 0
    L.head = 0
    L.size = 0


cdef class ReadyQueue:
    """Ready set: FIFO per lane, round-robin across lanes, no duplicate jobs.

    Each lane is a circular buffer of (job, seq) entries, so popping is a
    sequential read plus one hash-table delete. Discard only deletes the
    job's table slot; its entry turns stale (its seq no longer matches) and is
    skipped when reached, or dropped by compaction once stale entries dominate.
    Lanes with live jobs form a circular list in the order they became
    non-empty; ``_head`` is the next lane to serve, so fairness survives calls.
    """

    cdef Table _jobs            # job -> b: seq of its live entry, v: lane-pool index
    cdef Table _lanes           # lane -> b: lane-pool index
    cdef vector[RLane] _pool
    cdef ll _free_lane
    cdef ll _head
    cdef ll _seq

    def __cinit__(self):
        self._jobs.slots = NULL
        self._lanes.slots = NULL
        self._free_lane = -1
        self._head = -1
        self._seq = 0
        tbl_alloc(&self._jobs, 8, False)
        tbl_alloc(&self._lanes, 8, False)

    def __init__(self):
        pass

    def __dealloc__(self):
        cdef size_t i
        for i in range(self._pool.size()):
            PyMem_Free(self._pool[i].buf)
        PyMem_Free(self._jobs.slots)
        PyMem_Free(self._lanes.slots)

    cdef ll _lane_index(self, ll lane) except -1:
        """Pool index of `lane`, creating it at the ring tail if needed."""
        cdef Slot* s = find1(&self._lanes, lane)
        cdef ll li
        cdef RLane fresh
        cdef RLane* pool
        cdef bint created
        if s != NULL:
            return s.b
        tbl_reserve(&self._lanes, 1)
        li = self._free_lane
        if li != -1:
            self._free_lane = self._pool[li].rnext
        else:
            memset(&fresh, 0, sizeof(fresh))
            self._pool.push_back(fresh)
            li = <ll>self._pool.size() - 1
        put1(&self._lanes, lane, &created).b = li
        pool = self._pool.data()
        pool[li].lane = lane
        pool[li].live = 0
        if self._head == -1:
            pool[li].rprev = li
            pool[li].rnext = li
            self._head = li
        else:
            pool[li].rnext = self._head
            pool[li].rprev = pool[self._head].rprev
            pool[pool[self._head].rprev].rnext = li
            pool[self._head].rprev = li
        return li

    cdef int _append(self, ll li, ll job) except -1:
        """Queue `job` (not queued, room in _jobs reserved) at the tail of lane `li`."""
        cdef RLane* L = &self._pool[li]
        cdef bint created
        cdef Slot* s
        _lane_push(L, job, self._seq)
        s = put1(&self._jobs, job, &created)
        s.b = self._seq
        s.v = li
        self._seq += 1
        L.live += 1
        return 0

    cdef void _drop_lane(self, ll li) noexcept:
        cdef RLane* pool = self._pool.data()
        cdef RLane* L = &pool[li]
        if L.rnext == li:
            self._head = -1
        else:
            pool[L.rprev].rnext = L.rnext
            pool[L.rnext].rprev = L.rprev
            if self._head == li:
                self._head = L.rnext
        tbl_erase(&self._lanes, find1(&self._lanes, L.lane))
        _lane_release(L)
        L.rnext = self._free_lane
        self._free_lane = li

    cdef ll _pop_live(self, ll li) noexcept:
        """Remove and return the first live job of lane `li` (which has one)."""
        cdef RLane* L = &self._pool[li]
        cdef REntry e
        cdef Slot* s
        while True:
            e = _lane_pop(L)
            s = find1(&self._jobs, e.job)
            if s != NULL and s.b == e.seq:
                tbl_erase(&self._jobs, s)
                L.live -= 1
                return e.job

    cdef inline void _prefetch_ahead(self, ll li) noexcept:
        """Prefetch the table slot of the job pop_batch takes PREFETCH_AHEAD pops later."""
        cdef RLane* pool = self._pool.data()
        cdef RLane* L
        cdef ll pf = li
        cdef int d
        if pool[li].rnext == li:  # one lane: look further down its own buffer
            L = &pool[li]
            if <size_t>PREFETCH_AHEAD < L.size:
                prefetch1(&self._jobs, L.buf[(L.head + PREFETCH_AHEAD) & (L.cap - 1)].job)
            return
        for d in range(PREFETCH_AHEAD):
            pf = pool[pf].rnext
        L = &pool[pf]
        if L.size:
            prefetch1(&self._jobs, L.buf[L.head].job)

    cdef void _compact_lane(self, RLane* L) noexcept:
        """Squeeze stale entries out of a lane (best effort: skipped if out of memory)."""
        cdef size_t cap = 4
        cdef size_t i, n = 0
        cdef REntry e
        cdef Slot* s
        cdef REntry* buf
        while cap < <size_t>L.live:
            cap <<= 1
        buf = <REntry*>PyMem_Malloc(cap * sizeof(REntry))
        if buf == NULL:
            return
        for i in range(L.size):
            e = L.buf[(L.head + i) & (L.cap - 1)]
            s = find1(&self._jobs, e.job)
            if s != NULL and s.b == e.seq:
                buf[n] = e
                n += 1
        PyMem_Free(L.buf)
        L.buf = buf
        L.cap = cap
        L.head = 0
        L.size = n

    cdef void _compact_memory(self) noexcept:
        if self._jobs.size == 0:
            # Drained (every lane already released its buffer): reset the pool.
            self._pool.clear()
            self._free_lane = -1
        tbl_shrink(&self._jobs)
        tbl_shrink(&self._lanes)

    def push(self, job_id, lane=0):
        cdef ll job = _id(job_id, "job_id")
        cdef ll ln = _id(lane, "lane")
        if find1(&self._jobs, job) != NULL:
            return False
        tbl_reserve(&self._jobs, 1)
        self._append(self._lane_index(ln), job)
        return True

    def push_many(self, job_ids, lane=0):
        cdef ll ln = _id(lane, "lane")
        cdef vector[ll] ids
        cdef Py_ssize_t i, n, added = 0
        cdef ll job, li = -1
        _collect_ids(job_ids, "job_ids", ids)
        n = <Py_ssize_t>ids.size()
        if n == 0:
            return 0
        tbl_reserve(&self._jobs, n)
        for i in range(n):
            if i + PREFETCH_AHEAD < n:
                prefetch1(&self._jobs, ids[i + PREFETCH_AHEAD])
            job = ids[i]
            if find1(&self._jobs, job) != NULL:
                continue
            if li == -1:
                li = self._lane_index(ln)
            self._append(li, job)
            added += 1
        return added

    def pop_batch(self, n):
        cdef ll k = _count(n, "n")
        cdef Py_ssize_t m = self._jobs.size
        cdef Py_ssize_t i
        cdef ll li, nxt, job
        cdef list out
        cdef object o
        if k < m:
            m = <Py_ssize_t>k
        out = PyList_New(m)
        for i in range(m):
            li = self._head
            self._prefetch_ahead(li)
            nxt = self._pool[li].rnext
            job = self._pop_live(li)
            if self._pool[li].live == 0:
                self._drop_lane(li)
            else:
                self._head = nxt
            o = PyLong_FromLongLong(job)
            Py_INCREF(o)
            PyList_SET_ITEM(out, i, o)
        if m:
            self._compact_memory()
        return out

    def pop_lane(self, lane, n):
        cdef ll ln = _id(lane, "lane")
        cdef ll k = _count(n, "n")
        cdef Slot* s = find1(&self._lanes, ln)
        cdef ll li, live
        cdef Py_ssize_t i, m
        cdef list out
        cdef object o
        if s == NULL or k == 0:
            return []
        li = s.b
        live = self._pool[li].live
        m = <Py_ssize_t>(k if k < live else live)
        out = PyList_New(m)
        for i in range(m):
            o = PyLong_FromLongLong(self._pop_live(li))
            Py_INCREF(o)
            PyList_SET_ITEM(out, i, o)
        if self._pool[li].live == 0:
            self._drop_lane(li)
        self._compact_memory()
        return out

    def discard(self, job_id):
        cdef ll job = _id(job_id, "job_id")
        cdef Slot* s = find1(&self._jobs, job)
        cdef RLane* L
        cdef ll li
        if s == NULL:
            return False
        li = s.v
        tbl_erase(&self._jobs, s)
        L = &self._pool[li]
        L.live -= 1
        if L.live == 0:
            self._drop_lane(li)
        elif <ll>L.size - L.live > L.live + COMPACT_SLACK:
            self._compact_lane(L)
        self._compact_memory()
        return True

    def __len__(self):
        return self._jobs.size

    def __contains__(self, job_id):
        cdef ll v
        if not _lookup(job_id, &v):
            return False
        return find1(&self._jobs, v) != NULL

    def lane_len(self, lane):
        cdef ll ln = _id(lane, "lane")
        cdef Slot* s = find1(&self._lanes, ln)
        if s == NULL:
            return 0
        return self._pool[s.b].live

    def lanes(self):
        """Non-empty lanes in service order (next to be served first)."""
        cdef vector[ll] ids
        cdef ll li = self._head
        if li == -1:
            return []
        while True:
            ids.push_back(self._pool[li].lane)
            li = self._pool[li].rnext
            if li == self._head:
                break
        return _ll_list(ids.data(), <Py_ssize_t>ids.size())

    def __repr__(self):
        return f"<ReadyQueue jobs={self._jobs.size} lanes={self._lanes.size}>"

    def __reduce__(self):
        raise _no_pickle(self)


# --------------------------------------------------------------------------
# WaiterIndex
# --------------------------------------------------------------------------

cdef struct WEdge:
    ll key
    ll job
    int kprev   # key chain, in add order
    int knext   # also the free-list link
    int jnext   # job chain, newest first
    int pad

# A job's own chain is scanned to reject a duplicate (key, job) while the job
# waits on at most this many keys; beyond it the job's pairs are indexed in
# _pairs, which keeps add O(1) without paying a hash lookup in the common case.
cdef ll SCAN_LIMIT = 8
cdef ll MAX_EDGES = 0x7FFFFFFF


cdef inline int _lo(ll x) noexcept nogil:
    return <int>(<unsigned int>(<unsigned long long>x & 0xFFFFFFFFULL))


cdef inline int _hi(ll x) noexcept nogil:
    return <int>(<unsigned int>(<unsigned long long>x >> 32))


cdef inline ll _pack(int lo, int hi) noexcept nogil:
    return <ll>((<unsigned long long><unsigned int>hi << 32) | <unsigned int>lo)


cdef class WaiterIndex:
    """Many-to-many job<->key waits; waking a key releases each job exactly once.

    Every (key, job) wait is one edge threaded on the key's doubly-linked chain
    (add order, O(1) unlink) and the job's singly-linked chain (a job only
    ever leaves all its keys at once). Chain heads live inside the hash slots,
    so an add touches three cache lines and a removal about four.
    """

    cdef Table _keys            # key -> b: packed (head, tail) edge, v: count
    cdef Table _jobs            # job -> b: newest edge, v: number of keys
    cdef Table _pairs           # (key, job) of jobs with > SCAN_LIMIT keys
    cdef vector[WEdge] _edges
    cdef ll _free_edge

    def __cinit__(self):
        self._keys.slots = NULL
        self._jobs.slots = NULL
        self._pairs.slots = NULL
        self._free_edge = -1
        tbl_alloc(&self._keys, 8, False)
        tbl_alloc(&self._jobs, 8, False)
        tbl_alloc(&self._pairs, 8, True)

    def __init__(self):
        pass

    def __dealloc__(self):
        PyMem_Free(self._keys.slots)
        PyMem_Free(self._jobs.slots)
        PyMem_Free(self._pairs.slots)

    cdef ll _new_edge(self) except -1:
        cdef ll e = self._free_edge
        cdef WEdge fresh
        if e != -1:
            self._free_edge = self._edges[e].knext
            return e
        if <ll>self._edges.size() >= MAX_EDGES:
            raise MemoryError("WaiterIndex: too many waits")
        memset(&fresh, 0, sizeof(fresh))
        self._edges.push_back(fresh)
        return <ll>self._edges.size() - 1

    def add(self, key, job_id):
        cdef ll k = _id(key, "key")
        cdef ll j = _id(job_id, "job_id")
        cdef Slot* ks
        cdef Slot* js = find1(&self._jobs, j)
        cdef ll e, deg = 0
        cdef int head, tail
        cdef bint created
        cdef WEdge* edges
        if js != NULL:
            deg = js.v
            if deg <= SCAN_LIMIT:
                edges = self._edges.data()
                e = js.b
                while e != -1:
                    if edges[e].key == k:
                        return
                    e = edges[e].jnext
            elif find2(&self._pairs, k, j) != NULL:
                return
        # Allocate everything that can fail before linking anything.
        tbl_reserve(&self._keys, 1)
        tbl_reserve(&self._jobs, 1)
        if deg >= SCAN_LIMIT:
            tbl_reserve(&self._pairs, SCAN_LIMIT + 1)
        e = self._new_edge()
        edges = self._edges.data()
        js = put1(&self._jobs, j, &created)
        if created:
            js.b = -1
        ks = put1(&self._keys, k, &created)
        if created:
            ks.b = _pack(-1, -1)
        edges[e].key = k
        edges[e].job = j
        head = _lo(ks.b)
        tail = _hi(ks.b)
        edges[e].kprev = tail
        edges[e].knext = -1
        if tail == -1:
            head = <int>e
        else:
            edges[tail].knext = <int>e
        ks.b = _pack(head, <int>e)
        ks.v += 1
        edges[e].jnext = <int>js.b
        js.b = e
        js.v += 1
        if js.v == SCAN_LIMIT + 1:
            # Crossing the scan limit: index every pair of this job.
            while e != -1:
                put2(&self._pairs, edges[e].key, j, &created)
                e = edges[e].jnext
        elif js.v > SCAN_LIMIT + 1:
            put2(&self._pairs, k, j, &created)

    cdef void _remove_job(self, ll j, Slot* js) noexcept:
        """Unthread every edge of job `j` (whose _jobs slot is `js`)."""
        cdef WEdge* edges = self._edges.data()
        cdef bint indexed = js.v > SCAN_LIMIT
        cdef ll e = js.b
        cdef ll nxt
        cdef int head, tail
        cdef Slot* ks
        tbl_erase(&self._jobs, js)
        while e != -1:
            nxt = edges[e].jnext
            ks = find1(&self._keys, edges[e].key)
            ks.v -= 1
            if ks.v == 0:
                tbl_erase(&self._keys, ks)
            else:
                head = _lo(ks.b)
                tail = _hi(ks.b)
                if edges[e].kprev != -1:
                    edges[edges[e].kprev].knext = edges[e].knext
                else:
                    head = edges[e].knext
                if edges[e].knext != -1:
                    edges[edges[e].knext].kprev = edges[e].kprev
                else:
                    tail = edges[e].kprev
                ks.b = _pack(head, tail)
            if indexed:
                tbl_erase(&self._pairs, find2(&self._pairs, edges[e].key, j))
            edges[e].knext = <int>self._free_edge
            self._free_edge = e
            e = nxt

    cdef void _compact_memory(self) noexcept:
        if self._jobs.size == 0:
            self._edges.clear()
            if self._edges.capacity() > 4096:
                self._edges.shrink_to_fit()
            self._free_edge = -1
        tbl_shrink(&self._keys)
        tbl_shrink(&self._jobs)
        tbl_shrink(&self._pairs)

    def wake(self, key):
        cdef ll k = _id(key, "key")
        cdef Slot* ks = find1(&self._keys, k)
        cdef vector[ll] jobs
        cdef ll e
        cdef Py_ssize_t i, n
        cdef list out
        if ks == NULL:
            return []
        jobs.reserve(ks.v)
        e = _lo(ks.b)
        while e != -1:
            jobs.push_back(self._edges[e].job)
            e = self._edges[e].knext
        out = _ll_list(jobs.data(), <Py_ssize_t>jobs.size())
        n = <Py_ssize_t>jobs.size()
        for i in range(n):
            if i + PREFETCH_AHEAD < n:
                prefetch1(&self._jobs, jobs[i + PREFETCH_AHEAD])
            self._remove_job(jobs[i], find1(&self._jobs, jobs[i]))
        self._compact_memory()
        return out

    def remove_job(self, job_id):
        cdef ll j = _id(job_id, "job_id")
        cdef Slot* js = find1(&self._jobs, j)
        if js == NULL:
            return False
        self._remove_job(j, js)
        self._compact_memory()
        return True

    def keys_of(self, job_id):
        cdef ll j = _id(job_id, "job_id")
        cdef Slot* js = find1(&self._jobs, j)
        cdef vector[ll] keys
        cdef ll e
        cdef Py_ssize_t n
        if js == NULL:
            return []
        n = <Py_ssize_t>js.v
        keys.resize(n)
        e = js.b
        while e != -1:  # the job chain is newest first: fill from the back
            n -= 1
            keys[n] = self._edges[e].key
            e = self._edges[e].jnext
        return _ll_list(keys.data(), <Py_ssize_t>keys.size())

    def waiting(self, key):
        cdef ll k = _id(key, "key")
        cdef Slot* ks = find1(&self._keys, k)
        if ks == NULL:
            return 0
        return ks.v

    def __len__(self):
        return self._jobs.size

    def __contains__(self, job_id):
        cdef ll v
        if not _lookup(job_id, &v):
            return False
        return find1(&self._jobs, v) != NULL

    def __repr__(self):
        return f"<WaiterIndex jobs={self._jobs.size} keys={self._keys.size}>"

    def __reduce__(self):
        raise _no_pickle(self)


# --------------------------------------------------------------------------
# TimerHeap
# --------------------------------------------------------------------------

cdef struct HEntry:
    double d
    ll seq
    ll job


cdef inline bint _hless(const HEntry* x, const HEntry* y) noexcept nogil:
    return x.d < y.d or (x.d == y.d and x.seq < y.seq)


cdef class TimerHeap:
    """Deadline index, one deadline per job, ties broken by scheduling order.

    Binary min-heap of (deadline, seq, job) structs with lazy deletion: an
    entry is live only while ``_jobs`` maps its job to the entry's seq.
    """

    cdef Table _jobs            # job -> b: live seq, v: deadline (double bits)
    cdef vector[HEntry] _heap
    cdef ll _seq

    def __cinit__(self):
        self._jobs.slots = NULL
        self._seq = 0
        tbl_alloc(&self._jobs, 8, False)

    def __init__(self):
        pass

    def __dealloc__(self):
        PyMem_Free(self._jobs.slots)

    cdef void _sift_up(self, size_t i) noexcept:
        cdef HEntry* h = self._heap.data()
        cdef HEntry e = h[i]
        cdef size_t p
        while i > 0:
            p = (i - 1) >> 1
            if _hless(&e, &h[p]):
                h[i] = h[p]
                i = p
            else:
                break
        h[i] = e

    cdef void _sift_down(self, size_t i) noexcept:
        cdef HEntry* h = self._heap.data()
        cdef size_t n = self._heap.size()
        cdef HEntry e = h[i]
        cdef size_t c
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and _hless(&h[c + 1], &h[c]):
                c += 1
            if _hless(&h[c], &e):
                h[i] = h[c]
                i = c
            else:
                break
        h[i] = e

    cdef void _pop_top(self) noexcept:
        cdef size_t n = self._heap.size()
        if n > 1:
            self._heap[0] = self._heap[n - 1]
            self._heap.pop_back()
            self._sift_down(0)
        else:
            self._heap.pop_back()

    cdef void _maybe_compact(self) noexcept:
        cdef size_t i
        cdef Slot* s
        cdef HEntry e
        if <ll>self._heap.size() <= 2 * <ll>self._jobs.size + COMPACT_SLACK:
            return
        # Rebuilding needs no allocation: the live set is smaller than the heap.
        self._heap.clear()
        for i in range(self._jobs.mask + 1):
            s = self._jobs.slots + i
            if s.a >= 0:
                e.d = _ll2d(s.v)
                e.seq = s.b
                e.job = s.a
                self._heap.push_back(e)
        i = self._heap.size() // 2
        while i > 0:
            i -= 1
            self._sift_down(i)

    def schedule(self, job_id, deadline):
        cdef ll job = _id(job_id, "job_id")
        cdef double d = _time(deadline, "deadline")
        cdef HEntry e
        cdef Slot* s
        cdef bint created
        tbl_reserve(&self._jobs, 1)
        e.d = d
        e.seq = self._seq
        e.job = job
        self._heap.push_back(e)
        self._seq += 1
        self._sift_up(self._heap.size() - 1)
        s = put1(&self._jobs, job, &created)
        s.b = e.seq
        s.v = _d2ll(d)
        if not created:
            self._maybe_compact()

    def cancel(self, job_id):
        cdef ll job = _id(job_id, "job_id")
        cdef Slot* s = find1(&self._jobs, job)
        if s == NULL:
            return False
        tbl_erase(&self._jobs, s)
        self._maybe_compact()
        tbl_shrink(&self._jobs)
        return True

    def pop_due(self, now, limit=-1):
        cdef double t = _time(now, "now")
        cdef ll lim = _limit(limit)
        cdef vector[ll] due
        cdef HEntry e
        cdef Slot* s
        if lim == 0:
            return []
        while self._heap.size() and self._heap[0].d <= t:
            e = self._heap[0]
            self._pop_top()
            s = find1(&self._jobs, e.job)
            if s != NULL and s.b == e.seq:
                tbl_erase(&self._jobs, s)
                due.push_back(e.job)
                if <ll>due.size() == lim:
                    break
        if due.size():
            tbl_shrink(&self._jobs)
        return _ll_list(due.data(), <Py_ssize_t>due.size())

    def next_deadline(self):
        cdef Slot* s
        while self._heap.size():
            s = find1(&self._jobs, self._heap[0].job)
            if s != NULL and s.b == self._heap[0].seq:
                return self._heap[0].d
            self._pop_top()
        return None

    def deadline_of(self, job_id):
        cdef ll job = _id(job_id, "job_id")
        cdef Slot* s = find1(&self._jobs, job)
        if s == NULL:
            return None
        return _ll2d(s.v)

    def __len__(self):
        return self._jobs.size

    def __repr__(self):
        return f"<TimerHeap timers={self._jobs.size}>"

    def __reduce__(self):
        raise _no_pickle(self)


# --------------------------------------------------------------------------
# partition_batch
# --------------------------------------------------------------------------

def partition_batch(targets, seqs, applied):
    """Group a drained batch by target job, dropping already-applied items.

    ``applied.get(target, -1)`` is called exactly once per distinct target, in
    first-appearance order, so custom mappings see the same calls from both
    twins. Targets whose items are all duplicates get no group.
    """
    cdef tuple tt = targets if PyTuple_CheckExact(targets) else tuple(targets)
    cdef tuple ss = seqs if PyTuple_CheckExact(seqs) else tuple(seqs)
    cdef Py_ssize_t n = len(tt)
    cdef Py_ssize_t i, g, ng, ndup = 0
    cdef ll t, s, ti
    cdef Table tbl
    cdef Slot* sl
    cdef bint created
    cdef bint fast_dict
    cdef vector[ll] thr          # per distinct target: applied threshold
    cdef vector[Py_ssize_t] grp  # per distinct target: group number or -1
    cdef vector[ll] order_t      # per group: target id
    cdef vector[Py_ssize_t] gcount
    cdef vector[Py_ssize_t] item_g
    cdef vector[PyObject*] glists
    cdef vector[Py_ssize_t] gfill
    cdef object get, x, raw, o
    cdef list order, groups, dups, lst
    if len(ss) != n:
        raise ValueError(
            f"targets and seqs must have the same length, got {n} and {len(ss)}"
        )
    fast_dict = PyDict_CheckExact(applied)
    get = None if fast_dict else applied.get
    item_g.reserve(n)
    tbl.slots = NULL
    tbl_alloc(&tbl, _cap_for(n if n < 64 else 64), False)
    try:
        for i in range(n):
            x = tt[i]
            t = _id_at(x, "targets", i)
            s = _id_at(ss[i], "seqs", i)
            sl = find1(&tbl, t)
            if sl != NULL:
                ti = sl.b
            else:
                if not PyLong_CheckExact(x):
                    x = PyLong_FromLongLong(t)
                if fast_dict:
                    raw = (<dict>applied).get(x, -1)
                else:
                    raw = get(x, -1)
                ti = <ll>thr.size()
                thr.push_back(_clamped(raw))
                grp.push_back(-1)
                tbl_reserve(&tbl, 1)
                put1(&tbl, t, &created).b = ti
            if s <= thr[ti]:
                item_g.push_back(-1)
                ndup += 1
                continue
            g = grp[ti]
            if g == -1:
                g = <Py_ssize_t>order_t.size()
                grp[ti] = g
                order_t.push_back(t)
                gcount.push_back(0)
            gcount[g] += 1
            item_g.push_back(g)
    finally:
        PyMem_Free(tbl.slots)

    ng = <Py_ssize_t>order_t.size()
    order = _ll_list(order_t.data(), ng)
    groups = PyList_New(ng)
    glists.resize(ng)
    gfill.resize(ng, 0)
    for g in range(ng):
        lst = PyList_New(gcount[g])
        glists[g] = <PyObject*>lst
        Py_INCREF(lst)
        PyList_SET_ITEM(groups, g, lst)
    dups = PyList_New(ndup)
    ndup = 0
    for i in range(n):
        o = PyLong_FromSsize_t(i)
        Py_INCREF(o)
        g = item_g[i]
        if g == -1:
            PyList_SET_ITEM(dups, ndup, o)
            ndup += 1
        else:
            PyList_SET_ITEM(<object>glists[g], gfill[g], o)
            gfill[g] += 1
    return order, groups, dups
