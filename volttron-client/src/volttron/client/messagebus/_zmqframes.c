/*
 * Whole ZeroMQ messages in one call, for the VIP connections' hot path (volttron.client.messagebus.
 * zmq_frames wraps it and falls back to pyzmq when this module is missing).
 *
 * pyzmq moves one frame per call and each call costs 0.5-1.8 us of Python object work; a VIP
 * message has 6 to 8 frames, so reading one cost 14 us where libzmq itself needs about 1. These
 * functions read or write a whole multipart message per call, on the socket pyzmq opened, with
 * libzmq's functions looked up in the very library pyzmq loaded (bind()): nothing is linked at
 * build time and there is never a second libzmq in the process.
 *
 * The caller owns the socket: it checks that the socket is open before every call, calls from the
 * thread that uses the socket, and passes only non-blocking work here (every call is ZMQ_DONTWAIT,
 * so the GIL is held throughout, as pyzmq's own non-blocking calls effectively are).
 *
 * Errors are returned, not raised, as the positive errno (a Python int), so that the wrapper raises
 * pyzmq's own exception classes; only Python errors (memory, a signal handler's exception, a frame
 * that is not bytes-like) are raised here.
 */
#define PY_SSIZE_T_CLEAN
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030A0000 /* the stable ABI of Python 3.10: one build serves every later CPython */
#endif
#include <Python.h>
#include <dlfcn.h>
#include <errno.h>
#include <string.h>

/* libzmq 4.x declares zmq_msg_t as 64 opaque bytes; more room and alignment than it needs is harmless. */
typedef union {
    unsigned char bytes[128];
    long double align_ld;
    void *align_p;
    long long align_ll;
} msg_t;

#define FLAG_DONTWAIT 1 /* ZMQ_DONTWAIT */
#define FLAG_SNDMORE 2  /* ZMQ_SNDMORE */
#define PROPERTY_SRCFD 2 /* ZMQ_SRCFD: the file descriptor of the connection a message came over */

static int (*z_msg_init)(msg_t *);
static int (*z_msg_init_size)(msg_t *, size_t);
static int (*z_msg_recv)(msg_t *, void *, int);
static int (*z_msg_send)(msg_t *, void *, int);
static int (*z_msg_close)(msg_t *);
static void *(*z_msg_data)(msg_t *);
static size_t (*z_msg_size)(const msg_t *);
static int (*z_msg_more)(const msg_t *);
static int (*z_msg_get)(const msg_t *, int);
static const char *(*z_msg_gets)(const msg_t *, const char *);
static int (*z_errno)(void);
static void (*z_version)(int *, int *, int *);
static int bound = 0;

static void *lookup(void *lib, const char *name, int *missing) {
    void *f = dlsym(lib, name);
    if (f == NULL) *missing = 1;
    return f;
}

/* bind(path) -> (major, minor, patch): look libzmq's functions up through pyzmq's extension module
 * at `path`, which must already be loaded (RTLD_NOLOAD): dlsym searches it and the libraries it
 * depends on, so this finds the libzmq pyzmq uses, bundled or the system's. */
static PyObject *zf_bind(PyObject *self, PyObject *arg) {
    (void)self;
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(arg, &encoded)) return NULL;
    void *lib = dlopen(PyBytes_AsString(encoded), RTLD_NOW | RTLD_NOLOAD);
    Py_DECREF(encoded);
    if (lib == NULL) {
        const char *why = dlerror();
        PyErr_Format(PyExc_ImportError, "pyzmq's extension is not loaded: %s", why ? why : "dlopen failed");
        return NULL;
    }
    int missing = 0;
    *(void **)&z_msg_init = lookup(lib, "zmq_msg_init", &missing);
    *(void **)&z_msg_init_size = lookup(lib, "zmq_msg_init_size", &missing);
    *(void **)&z_msg_recv = lookup(lib, "zmq_msg_recv", &missing);
    *(void **)&z_msg_send = lookup(lib, "zmq_msg_send", &missing);
    *(void **)&z_msg_close = lookup(lib, "zmq_msg_close", &missing);
    *(void **)&z_msg_data = lookup(lib, "zmq_msg_data", &missing);
    *(void **)&z_msg_size = lookup(lib, "zmq_msg_size", &missing);
    *(void **)&z_msg_more = lookup(lib, "zmq_msg_more", &missing);
    *(void **)&z_msg_get = lookup(lib, "zmq_msg_get", &missing);
    *(void **)&z_msg_gets = lookup(lib, "zmq_msg_gets", &missing);
    *(void **)&z_errno = lookup(lib, "zmq_errno", &missing);
    *(void **)&z_version = lookup(lib, "zmq_version", &missing);
    /* the handle stays open on purpose: the functions must outlive this call */
    if (missing) {
        PyErr_SetString(PyExc_ImportError, "libzmq's message functions are not visible through pyzmq");
        return NULL;
    }
    int major = 0, minor = 0, patch = 0;
    z_version(&major, &minor, &patch);
    bound = 1;
    return Py_BuildValue("(iii)", major, minor, patch);
}

static int handle_of(PyObject *arg, void **sock) {
    if (!bound) {
        PyErr_SetString(PyExc_RuntimeError, "_zmqframes.bind() was not called");
        return -1;
    }
    *sock = PyLong_AsVoidPtr(arg);
    if (*sock == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a null socket handle");
        return -1;
    }
    return 0;
}

/* One zmq_msg_recv, retried after EINTR once pending signal handlers ran.
 * 0: received; > 0: an errno; -1: a Python exception (a signal handler raised). */
static int recv_one(msg_t *msg, void *sock) {
    for (;;) {
        if (z_msg_recv(msg, sock, FLAG_DONTWAIT) >= 0) return 0;
        int err = z_errno();
        if (err != EINTR) return err;
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

/* Read the rest of a message whose first frame is in `msg` into a new list (msg is closed). */
static PyObject *read_rest(msg_t *msg, void *sock) {
    PyObject *frames = PyList_New(0);
    if (frames == NULL) {
        z_msg_close(msg);
        return NULL;
    }
    for (;;) {
        PyObject *frame = PyBytes_FromStringAndSize((const char *)z_msg_data(msg), (Py_ssize_t)z_msg_size(msg));
        int more = z_msg_more(msg);
        z_msg_close(msg);
        if (frame == NULL || PyList_Append(frames, frame) < 0) {
            Py_XDECREF(frame);
            Py_DECREF(frames);
            if (more) { /* libzmq delivers the rest of a message anyway: drop it, stay on the boundary */
                do {
                    z_msg_init(msg);
                    if (recv_one(msg, sock) != 0) { z_msg_close(msg); break; }
                    more = z_msg_more(msg);
                    z_msg_close(msg);
                } while (more);
            }
            return NULL;
        }
        Py_DECREF(frame);
        if (!more) return frames;
        z_msg_init(msg);
        int rc = recv_one(msg, sock);
        if (rc != 0) {
            z_msg_close(msg);
            Py_DECREF(frames);
            return rc > 0 ? PyLong_FromLong(rc) : NULL;
        }
    }
}

/* Receive the first frame of the next message on the socket whose handle is `arg` into msg.
 * 1: received (the caller reads the rest); 0: *answer is the call's answer: None when no message
 * waits, the errno of a failure, or NULL with a Python exception. */
static int first_frame(PyObject *arg, void **sock, msg_t *msg, PyObject **answer) {
    *answer = NULL;
    if (handle_of(arg, sock) < 0) return 0;
    z_msg_init(msg);
    int rc = recv_one(msg, *sock);
    if (rc == 0) return 1;
    z_msg_close(msg);
    if (rc == EAGAIN) *answer = Py_NewRef(Py_None);
    else if (rc > 0) *answer = PyLong_FromLong(rc);
    return 0;
}

/* recv(handle) -> list[bytes] | None | int: the next whole message, None when none waits, or the
 * errno of a failure. */
static PyObject *zf_recv(PyObject *self, PyObject *arg) {
    (void)self;
    void *sock;
    msg_t msg;
    PyObject *answer;
    if (!first_frame(arg, &sock, &msg, &answer)) return answer;
    return read_rest(&msg, sock);
}

/* recv_routed(handle) -> (frames, fd, user) | None | int: as recv(), with what a ROUTER needs of the
 * first frame: the descriptor of the connection it came over (-1 where there is none, as on
 * inproc) and the "User-Id" property the ZAP handler set (None without one). */
static PyObject *zf_recv_routed(PyObject *self, PyObject *arg) {
    (void)self;
    void *sock;
    msg_t msg;
    PyObject *answer;
    if (!first_frame(arg, &sock, &msg, &answer)) return answer;
    int fd = z_msg_get(&msg, PROPERTY_SRCFD);
    if (fd < 0) fd = -1;
    PyObject *user;
    const char *user_c = z_msg_gets(&msg, "User-Id");
    if (user_c == NULL) {
        user = Py_NewRef(Py_None);
    } else {
        user = PyUnicode_DecodeUTF8(user_c, (Py_ssize_t)strlen(user_c), "replace");
        if (user == NULL) { /* read the rest anyway, so that the next read starts a message */
            PyObject *rest = read_rest(&msg, sock);
            Py_XDECREF(rest);
            return NULL;
        }
    }
    PyObject *frames = read_rest(&msg, sock);
    if (frames == NULL || PyLong_Check(frames)) {
        Py_DECREF(user);
        return frames;
    }
    return Py_BuildValue("(NiN)", frames, fd, user); /* N: the tuple takes the references */
}

/* send(handle, frames) -> True | False | int: queue `frames` (a sequence of bytes or bytearray) as one
 * message. False when the first frame would block (nothing was queued); an int is the errno of a
 * failure. libzmq takes the rest of a message whose first frame it accepted. */
static PyObject *zf_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "send(handle, frames) takes 2 arguments");
        return NULL;
    }
    void *sock;
    if (handle_of(args[0], &sock) < 0) return NULL;
    PyObject *seq = PySequence_Tuple(args[1]); /* the same object when it is a tuple already */
    if (seq == NULL) return NULL;
    Py_ssize_t count = PyTuple_Size(seq);
    if (count <= 0) {
        Py_DECREF(seq);
        if (count == 0) PyErr_SetString(PyExc_ValueError, "a message needs at least one frame");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) { /* refuse before anything is queued */
        PyObject *item = PyTuple_GetItem(seq, i);
        if (!PyBytes_Check(item) && !PyByteArray_Check(item)) {
            Py_DECREF(seq);
            PyErr_Format(PyExc_TypeError, "frame %zd is not bytes or bytearray", i);
            return NULL;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GetItem(seq, i);
        const char *data;
        Py_ssize_t size;
        if (PyBytes_Check(item)) {
            data = PyBytes_AsString(item);
            size = PyBytes_Size(item);
        } else {
            data = PyByteArray_AsString(item);
            size = PyByteArray_Size(item);
        }
        msg_t msg;
        int err = 0;
        if (z_msg_init_size(&msg, (size_t)size) != 0) {
            err = z_errno();
        } else {
            if (size) memcpy(z_msg_data(&msg), data, (size_t)size);
            int flags = FLAG_DONTWAIT | (i < count - 1 ? FLAG_SNDMORE : 0);
            for (;;) {
                if (z_msg_send(&msg, sock, flags) >= 0) break;
                err = z_errno();
                if (err != EINTR) break;
                err = 0;
                if (PyErr_CheckSignals() < 0) {
                    z_msg_close(&msg);
                    Py_DECREF(seq);
                    return NULL;
                }
            }
            if (err) z_msg_close(&msg);
        }
        if (err) {
            Py_DECREF(seq);
            if (i == 0 && err == EAGAIN) Py_RETURN_FALSE;
            return PyLong_FromLong(err);
        }
    }
    Py_DECREF(seq);
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"bind", zf_bind, METH_O, "bind(path) -> libzmq's version: use the libzmq loaded with pyzmq's extension at path."},
    {"recv", zf_recv, METH_O, "recv(handle) -> list[bytes] | None | int: the next whole message, non-blocking."},
    {"recv_routed", zf_recv_routed, METH_O,
     "recv_routed(handle) -> (frames, fd, user) | None | int: recv() with the first frame's descriptor and User-Id."},
    {"send", (PyCFunction)(void (*)(void))zf_send, METH_FASTCALL,
     "send(handle, frames) -> True | False | int: queue one whole message, non-blocking."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_zmqframes", "Whole ZeroMQ messages in one call (see zmq_frames.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__zmqframes(void) { return PyModule_Create(&module); }
