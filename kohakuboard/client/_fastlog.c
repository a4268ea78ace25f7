/* The optional C fast path of Board.log() and Board.step() (see fastboard.py).
 *
 * A FastLog object is set as a board's ``log`` attribute: calling it receives the keyword
 * names as a tuple (vectorcall), so a call of plain numbers under a key set seen before
 * builds no dict. It writes one scalar record into the owner lane of the ring map exactly as
 * board.py's Python fast path does (ring.py: body first, header last) and returns. Anything
 * else (another thread, a new key set, a value that is not exactly int or float, an int
 * beyond float64, no room before fast_end, a released map) calls the Python Board.log with
 * the same arguments, so errors and behaviour are those of the Python code.
 *
 * State that both paths use (step, global_step, owner thread, lane pos/shift/fast_end) lives
 * here only; the Python code reads and writes it through Field descriptors, which run no
 * Python code (no thread switch between a read and a write, as with plain attributes).
 *
 * Memory: the object holds a Py_buffer on the ring's mmap between attach() and release()
 * (while a buffer is held the mmap cannot be closed); every write is checked against the
 * lane's bytes inside that buffer; without a buffer every call takes the Python path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define HEADER_SIZE 16 /* u32 length, u32 reserved, u64 pos */
#define PREFIX_SIZE 32 /* u32 sid, u32 pad, i64 step, i64 global_step, f64 wall time */
#define MAX_FAST 64    /* wider calls take the Python path */
#define FASTLOG_API 1  /* what fastboard.py checks (a stale build is not used) */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    /* state shared with the Python code (Field descriptors) */
    int64_t step;
    int64_t global_step;
    unsigned long owner;
    int has_owner;
    int64_t pos;
    int64_t shift;
    int64_t fast_end;
    /* the ring */
    Py_buffer view;
    int attached;
    Py_ssize_t lane_lo, lane_hi; /* bytes of the view the owner lane may write */
    PyObject *schemas;           /* dict: key tuple -> (pack_into, pack, sid, size) */
    PyObject *last_keys;         /* key tuple of the last fast call (held: identity cache) */
    uint32_t last_sid;
    Py_ssize_t last_size;
    /* the Python code */
    PyObject *board;
    PyObject *py_log;
    PyObject *py_step;
} FastLog;

static PyTypeObject FastLog_Type;

/* time.time(): 0 and the seconds in *out, or -1 (no exception set) when the clock fails. */
static int
wall_time(double *out)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyTime_t t;
    if (PyTime_TimeRaw(&t) < 0) { /* sets no exception */
        return -1;
    }
    *out = PyTime_AsSecondsDouble(t);
    return 0;
#else
    /* What time.time() of CPython 3.10-3.12 computes: CLOCK_REALTIME in ns, then to seconds
       (_PyTime_AsSecondsDouble). */
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return -1;
    }
    int64_t ns = (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
    volatile double d;
    if (ns % 1000000000 == 0) {
        d = (double)(ns / 1000000000);
    }
    else {
        d = (double)ns;
        d /= 1e9;
    }
    *out = d;
    return 0;
#endif
}

static void
release_view(FastLog *self)
{
    if (self->attached) {
        self->attached = 0;
        PyBuffer_Release(&self->view);
    }
}

/* Calls func(board, *args, **kwargs) with the arguments of a vectorcall. */
static PyObject *
call_python(FastLog *self, PyObject *func, PyObject *const *args, size_t nargsf,
            PyObject *kwnames)
{
    if (self->board == NULL || func == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "kohakuboard: this log/step object is cleared");
        return NULL;
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject *small[16];
    PyObject **stack = small;
    if (total + 1 > 16) {
        stack = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    PyObject *board = self->board;
    Py_INCREF(board);
    Py_INCREF(func);
    stack[0] = board;
    if (total > 0) {
        memcpy(stack + 1, args, (size_t)total * sizeof(PyObject *));
    }
    PyObject *result = PyObject_Vectorcall(func, stack, (size_t)(nargs + 1), kwnames);
    Py_DECREF(func);
    Py_DECREF(board);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return result;
}

/* The schema of a key tuple: 1 (last_* now describe kwnames), 0 when there is none or it
 * is not usable, -1 with an exception when the lookup raised (as the Python path's lookup
 * would). Hashing or comparing keys of a str subclass runs Python code, which may do
 * anything to this object: the caller checks the state again afterwards. */
static int
find_schema(FastLog *self, PyObject *kwnames, Py_ssize_t n)
{
    PyObject *schemas = self->schemas;
    Py_INCREF(schemas); /* Python code in the lookup may attach() another dict */
    PyObject *schema = PyDict_GetItemWithError(schemas, kwnames);
    Py_XINCREF(schema);
    Py_DECREF(schemas);
    if (schema == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    int found = 0;
    if (PyTuple_CheckExact(schema) && PyTuple_GET_SIZE(schema) == 4) {
        PyObject *sid_obj = PyTuple_GET_ITEM(schema, 2);
        PyObject *size_obj = PyTuple_GET_ITEM(schema, 3);
        if (PyLong_CheckExact(sid_obj) && PyLong_CheckExact(size_obj)) {
            int o1 = 0, o2 = 0;
            long long sid = PyLong_AsLongLongAndOverflow(sid_obj, &o1);
            long long size = PyLong_AsLongLongAndOverflow(size_obj, &o2);
            if (!o1 && !o2 && sid >= 0 && sid <= 0xFFFFFFFFLL &&
                size == HEADER_SIZE + PREFIX_SIZE + 8 * (long long)n) {
                /* The cache is switched whole before the old key tuple is let go: its
                   deallocation may run Python code (a key's __del__) that logs and uses
                   the cache itself. */
                PyObject *old = self->last_keys;
                Py_INCREF(kwnames);
                self->last_keys = kwnames;
                self->last_sid = (uint32_t)sid;
                self->last_size = (Py_ssize_t)size;
                Py_XDECREF(old);
                found = 1;
            }
        }
    }
    Py_DECREF(schema);
    return found;
}

/* Whether the C path may write now (the state may change whenever Python code runs). */
static int
may_write(FastLog *self)
{
    return self->attached && self->has_owner && self->schemas != NULL &&
           PyThread_get_thread_ident() == self->owner;
}

/* The value of an exact float or int as struct's "d" packs it (int.__float__); 0 for any
   other type, or an int beyond float64 (struct raises OverflowError there, which the Python
   path reports naming the key). Runs no Python code. */
static int
as_double(PyObject *v, double *out)
{
    if (PyFloat_CheckExact(v)) {
        *out = PyFloat_AS_DOUBLE(v);
        return 1;
    }
    if (PyLong_CheckExact(v)) {
        double d = PyLong_AsDouble(v);
        if (d == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return 0;
        }
        *out = d;
        return 1;
    }
    return 0;
}

/* Writes one scalar record of n values (record size ``size``, schema ``sid``) into the
   owner lane and advances pos and step; 0 (nothing written) where the Python code must
   decide: a wrap-around, a full ring, a drop point, a record outside the lane. Runs no
   Python code. */
static int
write_record(FastLog *self, uint32_t sid, Py_ssize_t size, const double *values, Py_ssize_t n)
{
    int64_t pos = self->pos, end, start, start_end;
    if (size != HEADER_SIZE + PREFIX_SIZE + 8 * n || self->step == INT64_MAX ||
        __builtin_add_overflow(pos, (int64_t)size, &end) || end > self->fast_end) {
        return 0; /* wrap-around, a full ring or a drop point: the careful path */
    }
    if (__builtin_add_overflow(pos, self->shift, &start) ||
        __builtin_add_overflow(start, (int64_t)size, &start_end) || start < self->lane_lo ||
        start_end > self->lane_hi || self->lane_hi > self->view.len) {
        return 0;
    }
    char *rec = (char *)self->view.buf + start;
    if (((uintptr_t)rec & 7) != 0) {
        return 0; /* the header's pos is stored as one aligned 8-byte word */
    }
    double now;
    if (wall_time(&now) < 0) {
        return 0; /* time.time() raises there */
    }
    int64_t step = self->step;
    self->step = step + 1;
    char *body = rec + HEADER_SIZE;
    uint32_t zero = 0;
    memcpy(body, &sid, 4);
    memcpy(body + 4, &zero, 4);
    memcpy(body + 8, &step, 8);
    memcpy(body + 16, &self->global_step, 8);
    memcpy(body + 24, &now, 8);
    memcpy(body + PREFIX_SIZE, values, (size_t)n * 8);
    /* Body first, header last (ring.py): the reader takes a header whose pos is its cursor
       as proof of a complete record, so pos is stored last, as one aligned word, with
       release order (every store above is visible before it: a compiler barrier on x86,
       stlr on aarch64). */
    uint64_t length_word = (uint64_t)(uint32_t)size; /* u32 length, u32 reserved = 0 */
    memcpy(rec, &length_word, 8);
    __atomic_store_n((uint64_t *)(void *)(rec + 8), (uint64_t)pos, __ATOMIC_RELEASE);
    self->pos = end;
    return 1;
}

static PyObject *
fastlog_vectorcall(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    FastLog *self = (FastLog *)callable;
    double values[MAX_FAST];
    Py_ssize_t n, i;
    if (PyVectorcall_NARGS(nargsf) != 0 || kwnames == NULL || !may_write(self)) {
        goto python;
    }
    n = PyTuple_GET_SIZE(kwnames);
    if (n == 0 || n > MAX_FAST) {
        goto python;
    }
    if (kwnames != self->last_keys) {
        int found = find_schema(self, kwnames, n);
        if (found < 0) {
            return NULL;
        }
        if (!found || kwnames != self->last_keys || !may_write(self)) {
            goto python;
        }
    }
    for (i = 0; i < n; i++) {
        if (!as_double(args[i], &values[i])) {
            goto python;
        }
    }
    /* From here on no Python code runs: the state read below stays as it is. */
    if (!write_record(self, self->last_sid, self->last_size, values, n)) {
        goto python;
    }
    Py_RETURN_NONE;
python:
    return call_python(self, self->py_log, args, nargsf, kwnames);
}

/* put(sid, size, nums): one record of the numbers in the list ``nums`` (exact floats and
   ints) under a registered schema, as the vectorcall writes it; for the Python code's
   other fast paths (one-element CPU tensors read in the calling thread). False, nothing
   written, where the Python code must write it. */
static PyObject *
fastlog_put(FastLog *self, PyObject *const *args, Py_ssize_t nargs)
{
    double values[MAX_FAST];
    if (nargs != 3 || !PyLong_CheckExact(args[0]) || !PyLong_CheckExact(args[1]) ||
        !PyList_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "put(sid: int, size: int, nums: list)");
        return NULL;
    }
    if (!may_write(self)) {
        Py_RETURN_FALSE;
    }
    long long sid = PyLong_AsLongLong(args[0]);
    long long size = PyLong_AsLongLong(args[1]);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        Py_RETURN_FALSE;
    }
    PyObject *nums = args[2];
    Py_ssize_t n = PyList_GET_SIZE(nums), i;
    if (sid < 0 || sid > 0xFFFFFFFFLL || n < 1 || n > MAX_FAST ||
        size != HEADER_SIZE + PREFIX_SIZE + 8 * (long long)n) {
        Py_RETURN_FALSE;
    }
    for (i = 0; i < n; i++) { /* no Python code runs here: the list cannot change */
        if (!as_double(PyList_GET_ITEM(nums, i), &values[i])) {
            Py_RETURN_FALSE;
        }
    }
    if (!write_record(self, (uint32_t)sid, (Py_ssize_t)size, values, n)) {
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

static PyObject *
fastlog_step(FastLog *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0) {
        long long increment = 1;
        int64_t value;
        if (nargs == 1 && PyLong_CheckExact(args[0])) {
            int overflow = 0;
            increment = PyLong_AsLongLongAndOverflow(args[0], &overflow);
            if (increment == -1 && PyErr_Occurred()) {
                PyErr_Clear();
                goto python;
            }
            if (overflow) {
                goto python;
            }
        }
        else if (nargs != 0) {
            goto python;
        }
        if (!__builtin_add_overflow(self->global_step, (int64_t)increment, &value)) {
            PyObject *result = PyLong_FromLongLong(value);
            if (result != NULL) {
                self->global_step = value; /* only once the call cannot fail any more */
            }
            return result;
        }
    }
python:
    return call_python(self, self->py_step, args, (size_t)nargsf, kwnames);
}

static PyObject *
fastlog_attach(FastLog *self, PyObject *args)
{
    PyObject *mm, *schemas;
    Py_ssize_t lo, hi;
    if (!PyArg_ParseTuple(args, "OO!nn:attach", &mm, &PyDict_Type, &schemas, &lo, &hi)) {
        return NULL;
    }
    if (self->attached) {
        PyErr_SetString(PyExc_RuntimeError, "attach(): already attached to a ring");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(mm, &view, PyBUF_WRITABLE) < 0) {
        return NULL;
    }
    if (lo < 0 || hi <= lo || hi > view.len) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "attach(): lane bytes %zd..%zd outside a map of %zd",
                     lo, hi, view.len);
        return NULL;
    }
    /* The whole new state first: letting go of the old objects may run Python code. */
    PyObject *old_schemas = self->schemas, *old_keys = self->last_keys;
    Py_INCREF(schemas);
    self->schemas = schemas;
    self->last_keys = NULL;
    self->view = view;
    self->lane_lo = lo;
    self->lane_hi = hi;
    self->attached = 1;
    Py_XDECREF(old_schemas);
    Py_XDECREF(old_keys);
    Py_RETURN_NONE;
}

static PyObject *
fastlog_release(FastLog *self, PyObject *Py_UNUSED(ignored))
{
    release_view(self);
    Py_RETURN_NONE;
}

static PyObject *
fastlog_attached(FastLog *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->attached);
}

static int
fastlog_traverse(FastLog *self, visitproc visit, void *arg)
{
    Py_VISIT(self->schemas);
    Py_VISIT(self->last_keys);
    Py_VISIT(self->board);
    Py_VISIT(self->py_log);
    Py_VISIT(self->py_step);
    if (self->attached) {
        Py_VISIT(self->view.obj);
    }
    return 0;
}

static int
fastlog_clear(FastLog *self)
{
    release_view(self);
    Py_CLEAR(self->schemas);
    Py_CLEAR(self->last_keys);
    Py_CLEAR(self->board);
    Py_CLEAR(self->py_log);
    Py_CLEAR(self->py_step);
    return 0;
}

static void
fastlog_dealloc(FastLog *self)
{
    PyObject_GC_UnTrack(self);
    fastlog_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
fastlog_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *board, *py_log, *py_step;
    static char *kwlist[] = {"board", "log", "step", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:FastLog", kwlist, &board, &py_log,
                                     &py_step)) {
        return NULL;
    }
    if (!PyCallable_Check(py_log) || !PyCallable_Check(py_step)) {
        PyErr_SetString(PyExc_TypeError, "FastLog(board, log, step): log and step must be callable");
        return NULL;
    }
    FastLog *self = (FastLog *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = fastlog_vectorcall;
    Py_INCREF(board);
    self->board = board;
    Py_INCREF(py_log);
    self->py_log = py_log;
    Py_INCREF(py_step);
    self->py_step = py_step;
    return (PyObject *)self;
}

static PyMethodDef fastlog_methods[] = {
    {"step", (PyCFunction)(void (*)(void))fastlog_step, METH_FASTCALL | METH_KEYWORDS,
     "step($self, /, increment=1, *, to=None)\n--\n\n"
     "Advance the training step (global_step) and return it (Board.step, in C for an int "
     "increment)."},
    {"put", (PyCFunction)(void (*)(void))fastlog_put, METH_FASTCALL,
     "put(sid, size, nums): one record of exact floats/ints; False if the Python code must."},
    {"attach", (PyCFunction)fastlog_attach, METH_VARARGS,
     "attach(mm, schemas, lane_lo, lane_hi): hold a buffer on the ring map."},
    {"release", (PyCFunction)fastlog_release, METH_NOARGS,
     "Let go of the ring map; later calls take the Python path. Idempotent."},
    {NULL, NULL, 0, NULL},
};

/* Board.log bound to the board: inspect.signature() and help() follow __wrapped__, so
   they show log(**values) and its docs as on the Python path. */
static PyObject *
fastlog_wrapped(FastLog *self, void *Py_UNUSED(closure))
{
    if (self->board == NULL || self->py_log == NULL) {
        PyErr_SetString(PyExc_AttributeError, "__wrapped__");
        return NULL;
    }
    return PyMethod_New(self->py_log, self->board);
}

static PyGetSetDef fastlog_getset[] = {
    {"attached", (getter)fastlog_attached, NULL, "whether a buffer on the ring map is held",
     NULL},
    {"__wrapped__", (getter)fastlog_wrapped, NULL, "Board.log, bound to this board", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FastLog_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kohakuboard.client._fastlog.FastLog",
    .tp_basicsize = sizeof(FastLog),
    .tp_dealloc = (destructor)fastlog_dealloc,
    .tp_vectorcall_offset = offsetof(FastLog, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "Board.log(**values) with its fast path in C (see Board.log).",
    .tp_traverse = (traverseproc)fastlog_traverse,
    .tp_clear = (inquiry)fastlog_clear,
    .tp_methods = fastlog_methods,
    .tp_getset = fastlog_getset,
    .tp_new = fastlog_new,
};

/* -- Field: a descriptor for one piece of FastLog state, on the Python classes ---------- */

enum { F_STEP, F_GLOBAL_STEP, F_OWNER, F_POS, F_SHIFT, F_FAST_END, F_COUNT };
static const char *field_names[F_COUNT] = {"step", "global_step", "owner",
                                           "pos",  "shift",       "fast_end"};

typedef struct {
    PyObject_HEAD
    int which;
} Field;

static PyObject *str_fast; /* "_fast" */

static FastLog *
state_of(PyObject *obj)
{
    PyObject *fast = PyObject_GetAttr(obj, str_fast);
    if (fast == NULL) {
        return NULL;
    }
    if (!Py_IS_TYPE(fast, &FastLog_Type)) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_TypeError, "_fast is not a FastLog");
        return NULL;
    }
    return (FastLog *)fast; /* a new reference */
}

static PyObject *
field_get(Field *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return (PyObject *)self;
    }
    FastLog *fast = state_of(obj);
    if (fast == NULL) {
        return NULL;
    }
    PyObject *result = NULL;
    switch (self->which) {
    case F_STEP:
        result = PyLong_FromLongLong(fast->step);
        break;
    case F_GLOBAL_STEP:
        result = PyLong_FromLongLong(fast->global_step);
        break;
    case F_OWNER:
        result = fast->has_owner ? PyLong_FromUnsignedLong(fast->owner) : PyLong_FromLong(-1);
        break;
    case F_POS:
        result = PyLong_FromLongLong(fast->pos);
        break;
    case F_SHIFT:
        result = PyLong_FromLongLong(fast->shift);
        break;
    case F_FAST_END:
        result = PyLong_FromLongLong(fast->fast_end);
        break;
    }
    Py_DECREF(fast);
    return result;
}

static int
field_set(Field *self, PyObject *obj, PyObject *value)
{
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "cannot delete %s", field_names[self->which]);
        return -1;
    }
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, got %.100s",
                     field_names[self->which], Py_TYPE(value)->tp_name);
        return -1;
    }
    FastLog *fast = state_of(obj);
    if (fast == NULL) {
        return -1;
    }
    int rc = 0;
    if (self->which == F_OWNER) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (v == -1 && !overflow && !PyErr_Occurred()) {
            fast->has_owner = 0;
        }
        else {
            PyErr_Clear();
            unsigned long ident = PyLong_AsUnsignedLong(value);
            if (ident == (unsigned long)-1 && PyErr_Occurred()) {
                rc = -1;
            }
            else {
                fast->owner = ident;
                fast->has_owner = 1;
            }
        }
    }
    else {
        long long v = PyLong_AsLongLong(value);
        if (v == -1 && PyErr_Occurred()) {
            rc = -1;
        }
        else {
            switch (self->which) {
            case F_STEP:
                fast->step = v;
                break;
            case F_GLOBAL_STEP:
                fast->global_step = v;
                break;
            case F_POS:
                fast->pos = v;
                break;
            case F_SHIFT:
                fast->shift = v;
                break;
            case F_FAST_END:
                fast->fast_end = v;
                break;
            }
        }
    }
    Py_DECREF(fast);
    return rc;
}

static PyObject *
field_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    const char *name;
    static char *kwlist[] = {"name", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "s:Field", kwlist, &name)) {
        return NULL;
    }
    for (int i = 0; i < F_COUNT; i++) {
        if (strcmp(name, field_names[i]) == 0) {
            Field *self = (Field *)type->tp_alloc(type, 0);
            if (self != NULL) {
                self->which = i;
            }
            return (PyObject *)self;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown FastLog field %R", PyTuple_GET_ITEM(args, 0));
    return NULL;
}

static PyTypeObject Field_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "kohakuboard.client._fastlog.Field",
    .tp_basicsize = sizeof(Field),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Field(name): an attribute stored in the instance's FastLog (its _fast).",
    .tp_descr_get = (descrgetfunc)field_get,
    .tp_descr_set = (descrsetfunc)field_set,
    .tp_new = field_new,
};

static struct PyModuleDef fastlog_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "kohakuboard.client._fastlog",
    .m_doc = "The optional C fast path of Board.log() and Board.step().",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__fastlog(void)
{
#if PY_BIG_ENDIAN
    /* Records are little endian and written here in the machine's order. */
    PyErr_SetString(PyExc_ImportError, "kohakuboard's C fast path needs a little-endian CPU");
    return NULL;
#endif
    if (PyType_Ready(&FastLog_Type) < 0 || PyType_Ready(&Field_Type) < 0) {
        return NULL;
    }
    str_fast = PyUnicode_InternFromString("_fast");
    if (str_fast == NULL) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&fastlog_module);
    if (m == NULL) {
        return NULL;
    }
    Py_INCREF(&FastLog_Type);
    if (PyModule_AddObject(m, "FastLog", (PyObject *)&FastLog_Type) < 0) {
        Py_DECREF(&FastLog_Type);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&Field_Type);
    if (PyModule_AddObject(m, "Field", (PyObject *)&Field_Type) < 0) {
        Py_DECREF(&Field_Type);
        Py_DECREF(m);
        return NULL;
    }
    /* fastboard.py uses this module only if it says the API it was written for, and the
       Python version it was built for is the one running (a file renamed by hand) */
    if (PyModule_AddIntConstant(m, "API", FASTLOG_API) < 0 ||
        PyModule_AddIntConstant(m, "BUILT_FOR", PY_VERSION_HEX >> 16) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
