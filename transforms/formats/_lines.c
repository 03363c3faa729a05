/* CSV lines of a batch in one pass: the compiled twin of csv_bytes.lines_bytes and
 * csv.csv_lines (transforms/formats/csv_bytes.py says when it is used).
 *
 * lines(parts, rows, delimiter, end) -> bytes
 *
 * Each part is one column (or a run of columns) of the batch, in order:
 *   - a field matrix: a C-contiguous 2-D buffer of bytes, one row per line, whose
 *     non-zero bytes in order are the row's field (zero bytes are padding);
 *   - a list of str, one field per line, written as its UTF-8 bytes;
 *   - a number column, the tuple (style, values, mask, null[, others]): mask None or a
 *     1-D buffer of bytes (non-zero: null, written as the bytes null). Style 0: values
 *     int32 or int64, each as str(int) writes it; 1000 or 1000000: int32 or int64, each
 *     an RFC 3339 UTC text of that many fraction digits' units since the epoch
 *     (2024-01-05T23:55:00.003Z, ...00.000003Z), outside years 1-9999 the integer;
 *     -1: float64 or float32, each as its shortest decimal (repr, or float32's shortest)
 *     where the exact integer method of csv_doubles.py finds it, else others(index) -> str.
 * Line i is part 0's field i, delimiter, part 1's field i, ..., end.
 *
 * The str parts are read (and held) with the GIL, then every line is copied with the
 * GIL released: the driver's I/O thread decodes the next page meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#include "_number_texts.h"

enum { MATRIX, TEXT, NUMBER };

typedef struct {
    int kind;
    Py_buffer view;       /* a matrix part */
    Py_ssize_t width;     /* its row width */
    const char **texts;   /* a text part: each field's UTF-8 bytes and length */
    Py_ssize_t *sizes;
    PyObject *held;       /* the list, held while its fields are read */
    long style;           /* a number part's: 0 (integers), 1000 or 1000000, -1 (floats) */
    Py_buffer mask;       /* its mask (obj NULL: no mask) */
    char *rendered;       /* a float part: its fields' bytes, field i from offsets[i] */
    Py_ssize_t *offsets;
    const char *null;
    Py_ssize_t null_size;
} Part;

/* The widest field of a number part: a sign and 19 digits, or 1 + 26 bytes of RFC 3339. */
#define NUMBER_WIDTH 27

static void release_parts(Part *parts, Py_ssize_t count) {
    for (Py_ssize_t k = 0; k < count; k++) {
        if (parts[k].kind == TEXT) {
            PyMem_Free(parts[k].texts);
            PyMem_Free(parts[k].sizes);
        }
        Py_XDECREF(parts[k].held);
        if (parts[k].view.obj != NULL) {
            PyBuffer_Release(&parts[k].view);
        }
        if (parts[k].mask.obj != NULL) {
            PyBuffer_Release(&parts[k].mask);
        }
        PyMem_Free(parts[k].rendered);
        PyMem_Free(parts[k].offsets);
    }
    PyMem_Free(parts);
}

static int render_floats(Part *part, Py_ssize_t rows, PyObject *others);

/* True when a number part's row is null. */
static int is_null(const Part *part, Py_ssize_t i) {
    return part->mask.obj != NULL && ((const char *)part->mask.buf)[i];
}

/* A number part from its tuple (style, values, mask, null[, others]). */
static int open_number(PyObject *item, Py_ssize_t rows, Part *part, Py_ssize_t *total) {
    PyObject *values, *mask, *others = Py_None;
    part->kind = NUMBER;
    if (!PyArg_ParseTuple(item, "lOOy#|O", &part->style, &values, &mask, &part->null,
                          &part->null_size, &others)) {
        return -1;
    }
    Py_INCREF(item);
    part->held = item; /* keeps the null bytes alive */
    long style = part->style;
    if (style != 0 && style != 1000 && style != 1000000 && style != -1) {
        PyErr_SetString(PyExc_ValueError, "a number part's style is 0, 1000, 1000000 or -1");
        return -1;
    }
    if (PyObject_GetBuffer(values, &part->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    const char *format = part->view.format;
    char code = format[0] == '<' || format[0] == '=' || format[0] == '@' ? format[1] : format[0];
    int fits = style == -1 ? code == 'd' || code == 'f' : code == 'i' || code == 'l' || code == 'q';
    if (part->view.ndim != 1 || part->view.shape[0] != rows || !fits ||
        (part->view.itemsize != 4 && part->view.itemsize != 8)) {
        PyErr_SetString(PyExc_ValueError,
                        style == -1 ? "a float part's values are not 1-D float32 or float64, "
                                      "one per line"
                                    : "a number part's values are not 1-D int32 or int64, "
                                      "one per line");
        return -1;
    }
    if (mask != Py_None) {
        if (PyObject_GetBuffer(mask, &part->mask, PyBUF_C_CONTIGUOUS) < 0) {
            return -1;
        }
        if (part->mask.ndim != 1 || part->mask.itemsize != 1 || part->mask.shape[0] != rows) {
            PyErr_SetString(PyExc_ValueError, "a number part's mask is not one byte per line");
            return -1;
        }
    }
    if (style == -1) {
        if (render_floats(part, rows, others) < 0) {
            return -1;
        }
        *total += part->offsets[rows] + rows * part->null_size;
        return 0;
    }
    Py_ssize_t width = part->null_size > NUMBER_WIDTH ? part->null_size : NUMBER_WIDTH;
    *total += rows * width;
    return 0;
}

/* One part from its object; on failure an exception is set and -1 returned. Adds the
 * part's bytes (padding included) to *total. */
static int open_part(PyObject *item, Py_ssize_t rows, Part *part, Py_ssize_t *total) {
    if (PyList_CheckExact(item)) {
        if (PyList_GET_SIZE(item) != rows) {
            PyErr_SetString(PyExc_ValueError, "a text part's length is not the row count");
            return -1;
        }
        part->kind = TEXT;
        Py_INCREF(item);
        part->held = PySequence_Tuple(item); /* its own references: the list may change */
        Py_DECREF(item);
        if (part->held == NULL) {
            return -1;
        }
        part->texts = PyMem_Malloc(sizeof(char *) * (size_t)(rows ? rows : 1));
        part->sizes = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(rows ? rows : 1));
        if (part->texts == NULL || part->sizes == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (Py_ssize_t i = 0; i < rows; i++) {
            PyObject *text = PyTuple_GET_ITEM(part->held, i);
            if (!PyUnicode_Check(text)) {
                PyErr_SetString(PyExc_TypeError, "a text part holds a value that is not str");
                return -1;
            }
            part->texts[i] = PyUnicode_AsUTF8AndSize(text, &part->sizes[i]);
            if (part->texts[i] == NULL) {
                return -1;
            }
            *total += part->sizes[i];
        }
        return 0;
    }
    if (PyTuple_Check(item)) {
        return open_number(item, rows, part, total);
    }
    if (PyObject_GetBuffer(item, &part->view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (part->view.ndim != 2 || part->view.itemsize != 1 || part->view.shape[0] != rows) {
        PyErr_SetString(PyExc_ValueError, "a matrix part is not 2-D bytes of one row per line");
        return -1;
    }
    part->width = part->view.shape[1];
    *total += rows * part->width;
    return 0;
}

/* Copy a matrix row's non-zero bytes to out; returns the new end. Eight bytes at a time
 * where none of them is zero (the digits of a number), else byte by byte. */
static char *copy_field(char *out, const unsigned char *row, Py_ssize_t width) {
    Py_ssize_t j = 0;
    for (; j + 8 <= width; j += 8) {
        unsigned long long word;
        memcpy(&word, row + j, 8);
        if (((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL) == 0) {
            memcpy(out, row + j, 8);
            out += 8;
        } else {
            for (int b = 0; b < 8; b++) {
                *out = (char)row[j + b];
                out += row[j + b] != 0;
            }
        }
    }
    for (; j < width; j++) {
        *out = (char)row[j];
        out += row[j] != 0;
    }
    return out;
}

/* Room for size more bytes in a float part's rendered fields. */
static int reserve(Part *part, Py_ssize_t *capacity, Py_ssize_t used, Py_ssize_t size) {
    if (*capacity - used >= size) {
        return 0;
    }
    Py_ssize_t grown_capacity = 2 * *capacity + size;
    char *grown = PyMem_Realloc(part->rendered, (size_t)grown_capacity);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    part->rendered = grown;
    *capacity = grown_capacity;
    return 0;
}

/* Bytes enough for any shortest decimal: a sign, 15 digits, a point, 20 digits. */
#define DECIMAL_WIDTH 40

/* A float part's fields rendered with the GIL held (others is a Python callable): each
 * shortest decimal, or others(index) where the method gives nothing; nulls render
 * nothing here. */
static int render_floats(Part *part, Py_ssize_t rows, PyObject *others) {
    Py_ssize_t capacity = rows * 24 + DECIMAL_WIDTH, used = 0;
    int wide = part->view.itemsize == 8;
    part->rendered = PyMem_Malloc((size_t)capacity);
    part->offsets = PyMem_Malloc(sizeof(Py_ssize_t) * (size_t)(rows + 1));
    if (part->rendered == NULL || part->offsets == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < rows; i++) {
        part->offsets[i] = used;
        if (is_null(part, i)) {
            continue;
        }
        if (reserve(part, &capacity, used, DECIMAL_WIDTH) < 0) {
            return -1;
        }
        const char *value = (const char *)part->view.buf + i * part->view.itemsize;
        int size = shortest_decimal(value, wide, part->rendered + used);
        if (size >= 0) {
            used += size;
            continue;
        }
        if (others == Py_None) {
            PyErr_SetString(PyExc_ValueError, "a float part needs others for this value");
            return -1;
        }
        PyObject *text = PyObject_CallFunction(others, "n", i);
        if (text == NULL) {
            return -1;
        }
        Py_ssize_t length;
        const char *bytes = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &length) : NULL;
        if (bytes == NULL || reserve(part, &capacity, used, length) < 0) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "others gave a value that is not str");
            }
            Py_DECREF(text);
            return -1;
        }
        memcpy(part->rendered + used, bytes, (size_t)length);
        used += length;
        Py_DECREF(text);
    }
    part->offsets[rows] = used;
    return 0;
}

static char *write_number(char *out, const Part *part, Py_ssize_t i, Recent *recent) {
    if (is_null(part, i)) {
        memcpy(out, part->null, (size_t)part->null_size);
        return out + part->null_size;
    }
    if (part->style == -1) {
        Py_ssize_t size = part->offsets[i + 1] - part->offsets[i];
        memcpy(out, part->rendered + part->offsets[i], (size_t)size);
        return out + size;
    }
    long long value = part->view.itemsize == 8 ? ((const long long *)part->view.buf)[i]
                                                : ((const int *)part->view.buf)[i];
    return part->style ? write_timestamp(out, value, part->style, recent)
                            : write_integer(out, value);
}

static PyObject *lines(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *sequence;
    Py_ssize_t rows, delimiter_size, end_size;
    const char *delimiter, *end;
    if (!PyArg_ParseTuple(args, "Ony#y#", &sequence, &rows, &delimiter, &delimiter_size,
                          &end, &end_size)) {
        return NULL;
    }
    PyObject *items = PySequence_Fast(sequence, "parts must be a sequence");
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items);
    if (count == 0 || rows < 0) {
        Py_DECREF(items);
        PyErr_SetString(PyExc_ValueError, "no parts, or a negative row count");
        return NULL;
    }
    Part *parts = PyMem_Calloc((size_t)count, sizeof(Part));
    if (parts == NULL) {
        Py_DECREF(items);
        return PyErr_NoMemory();
    }
    Py_ssize_t total = rows * ((count - 1) * delimiter_size + end_size);
    for (Py_ssize_t k = 0; k < count; k++) {
        if (open_part(PySequence_Fast_GET_ITEM(items, k), rows, &parts[k], &total) < 0) {
            release_parts(parts, k + 1);
            Py_DECREF(items);
            return NULL;
        }
    }
    Py_DECREF(items);
    PyObject *result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        release_parts(parts, count);
        return NULL;
    }
    char *start = PyBytes_AS_STRING(result), *out = start;
    Recent recent = {NULL, 0, 0, 0, 0};
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < rows; i++) {
        for (Py_ssize_t k = 0; k < count; k++) {
            Part *part = &parts[k];
            if (k) {
                memcpy(out, delimiter, (size_t)delimiter_size);
                out += delimiter_size;
            }
            if (part->kind == TEXT) {
                memcpy(out, part->texts[i], (size_t)part->sizes[i]);
                out += part->sizes[i];
            } else if (part->kind == NUMBER) {
                out = write_number(out, part, i, &recent);
            } else {
                const unsigned char *row = (const unsigned char *)part->view.buf + i * part->width;
                out = copy_field(out, row, part->width);
            }
        }
        memcpy(out, end, (size_t)end_size);
        out += end_size;
    }
    Py_END_ALLOW_THREADS
    release_parts(parts, count);
    if (_PyBytes_Resize(&result, out - start) < 0) {
        return NULL;
    }
    return result;
}

static PyMethodDef methods[] = {
    {"lines", lines, METH_VARARGS,
     "lines(parts, rows, delimiter, end) -> bytes: a batch's CSV lines from its field "
     "matrices (padding dropped), lists of str fields and number columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lines", "CSV lines of a batch in one compiled pass.", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* What csv_bytes.py checks before it uses the module: a build of older source (an install
 * not redone after an update) is then left unused rather than called with parts it does
 * not know. Raise it whenever lines() changes what it takes or writes. */
#define INTERFACE 1

PyMODINIT_FUNC PyInit__lines(void) {
    PyObject *created = PyModule_Create(&module);
    if (created != NULL && PyModule_AddIntConstant(created, "INTERFACE", INTERFACE) < 0) {
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
