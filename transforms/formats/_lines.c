/* CSV lines of a batch in one pass: the compiled twin of csv_bytes.lines_bytes and
 * csv.csv_lines (transforms/formats/csv_bytes.py says when it is used).
 *
 * lines(parts, rows, delimiter, end) -> bytes
 *
 * Each part is one column (or a run of columns) of the batch, in order:
 *   - a field matrix: a C-contiguous 2-D buffer of bytes, one row per line, whose
 *     non-zero bytes in order are the row's field (zero bytes are padding);
 *   - or a list of str, one field per line, written as its UTF-8 bytes.
 * Line i is part 0's field i, delimiter, part 1's field i, ..., end.
 *
 * The str parts are read (and held) with the GIL, then every line is copied with the
 * GIL released: the driver's I/O thread decodes the next page meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

typedef struct {
    int is_text;
    Py_buffer view;       /* a matrix part */
    Py_ssize_t width;     /* its row width */
    const char **texts;   /* a text part: each field's UTF-8 bytes and length */
    Py_ssize_t *sizes;
    PyObject *held;       /* the list, held while its fields are read */
} Part;

static void release_parts(Part *parts, Py_ssize_t count) {
    for (Py_ssize_t k = 0; k < count; k++) {
        if (parts[k].is_text) {
            PyMem_Free(parts[k].texts);
            PyMem_Free(parts[k].sizes);
            Py_XDECREF(parts[k].held);
        } else if (parts[k].view.obj != NULL) {
            PyBuffer_Release(&parts[k].view);
        }
    }
    PyMem_Free(parts);
}

/* One part from its object; on failure an exception is set and -1 returned. Adds the
 * part's bytes (padding included) to *total. */
static int open_part(PyObject *item, Py_ssize_t rows, Part *part, Py_ssize_t *total) {
    if (PyList_CheckExact(item)) {
        if (PyList_GET_SIZE(item) != rows) {
            PyErr_SetString(PyExc_ValueError, "a text part's length is not the row count");
            return -1;
        }
        part->is_text = 1;
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

static PyObject *lines(PyObject *self, PyObject *args) {
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
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < rows; i++) {
        for (Py_ssize_t k = 0; k < count; k++) {
            Part *part = &parts[k];
            if (k) {
                memcpy(out, delimiter, (size_t)delimiter_size);
                out += delimiter_size;
            }
            if (part->is_text) {
                memcpy(out, part->texts[i], (size_t)part->sizes[i]);
                out += part->sizes[i];
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
     "matrices (padding dropped) and lists of str fields."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lines", "CSV lines of a batch in one compiled pass.", -1, methods,
};

PyMODINIT_FUNC PyInit__lines(void) { return PyModule_Create(&module); }
