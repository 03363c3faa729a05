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

enum { MATRIX, TEXT, NUMBER };

typedef struct {
    int kind;
    Py_buffer view;       /* a matrix part */
    Py_ssize_t width;     /* its row width */
    const char **texts;   /* a text part: each field's UTF-8 bytes and length */
    Py_ssize_t *sizes;
    PyObject *held;       /* the list, held while its fields are read */
    long per_second;      /* a number part's style: 0 (integers), 1000 or 1000000, -1 */
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
    if (!PyArg_ParseTuple(item, "lOOy#|O", &part->per_second, &values, &mask, &part->null,
                          &part->null_size, &others)) {
        return -1;
    }
    Py_INCREF(item);
    part->held = item; /* keeps the null bytes alive */
    long style = part->per_second;
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

static char *write_unsigned(char *out, unsigned long long magnitude) {
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    while (count) {
        *out++ = digits[--count];
    }
    return out;
}

/* The shortest decimal of a float64 (wide) or float32 of magnitude in [2**-7, 2**49)
 * (float32: [2**-7, 2**24)), as csv_doubles.shortest_decimals finds it: the value is
 * m * 2**-s, its fraction digits come one at a time by multiplying the binary fraction by
 * 10, and the first k whose candidates (rounded down or up) lie within half a unit in
 * the last place is the shortest; the nearer candidate is taken. Writes it to out and
 * returns its length, or -1 where the method gives nothing (outside the range, a power of
 * two, two candidates equally near, zeros, NaN and infinities). */
static int shortest_decimal(const void *value, int wide, char *out) {
    unsigned long long bits, width, top, low, high;
    int negative;
    if (wide) {
        memcpy(&bits, value, 8);
        negative = (int)(bits >> 63);
        bits &= 0x7FFFFFFFFFFFFFFFULL;
        width = 52, top = 1076, low = 0x3F80000000000000ULL, high = 0x4300000000000000ULL;
    } else {
        unsigned int narrow;
        memcpy(&narrow, value, 4);
        negative = (int)(narrow >> 31);
        bits = narrow & 0x7FFFFFFFU;
        width = 23, top = 151, low = 0x3C000000ULL, high = 0x4B800000ULL;
    }
    unsigned long long mantissa_bits = (1ULL << width) - 1;
    if (bits < low || bits >= high || (bits & mantissa_bits) == 0) {
        return -1;
    }
    unsigned long long m = (bits & mantissa_bits) | (1ULL << width);
    unsigned long long shift = top - (bits >> width); /* fraction bits of twice the value */
    unsigned long long unit = 1ULL << shift, low_bits = unit - 1, half = unit >> 1;
    unsigned long long fraction = (m << 1) & low_bits, whole = m >> (shift - 1);
    unsigned long long limit = 1;
    char digits[20];
    int places = -1, rounded_up = 0;
    for (int k = 0; k < 20; k++, limit *= 10) {
        unsigned long long rest = unit - fraction;
        unsigned long long near = fraction < rest ? fraction : rest;
        if (near < limit) {
            int down = fraction < limit, up = rest < limit;
            if (down && up && fraction == half) {
                return -1;
            }
            rounded_up = up && (!down || fraction > half);
            places = k;
            break;
        }
        fraction *= 10;
        digits[k] = (char)('0' + (fraction >> shift));
        fraction &= low_bits;
    }
    if (places < 0) {
        return -1;
    }
    if (rounded_up) { /* never carries: a carry would end the decimal in a zero */
        if (places) {
            digits[places - 1]++;
        } else {
            whole++;
        }
    }
    char *start = out;
    if (negative) {
        *out++ = '-';
    }
    out = write_unsigned(out, whole);
    *out++ = '.';
    if (places == 0) {
        *out++ = '0';
    }
    memcpy(out, digits, (size_t)places);
    return (int)(out + places - start);
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

/* A value as str(int) writes it. */
static char *write_integer(char *out, long long value) {
    if (value < 0) {
        *out++ = '-';
        return write_unsigned(out, 0ULL - (unsigned long long)value);
    }
    return write_unsigned(out, (unsigned long long)value);
}

static char *write_two(char *out, int value) {
    out[0] = (char)('0' + value / 10);
    out[1] = (char)('0' + value % 10);
    return out + 2;
}

/* Floor division, for values before the epoch. */
static long long floor_div(long long value, long long divisor) {
    long long quotient = value / divisor;
    return quotient - (value % divisor != 0 && (value < 0) != (divisor < 0));
}

/* Days since 1970-01-01 (0001-01-01 to 9999-12-31) -> the proleptic Gregorian date
 * (the civil_from_days algorithm: 400-year eras of 146097 days from 0000-03-01). */
static void civil_date(long long days, int *year, int *month, int *day) {
    long long z = days + 719468;
    long long era = floor_div(z, 146097);
    long long day_of_era = z - era * 146097;
    long long year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    long long day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    long long shifted_month = (5 * day_of_year + 2) / 153;
    *day = (int)(day_of_year - (153 * shifted_month + 2) / 5 + 1);
    *month = (int)(shifted_month < 10 ? shifted_month + 3 : shifted_month - 9);
    *year = (int)(year_of_era + era * 400 + (*month <= 2));
}

/* First and last day of years 1-9999, in days since the epoch. */
#define FIRST_DAY (-719162LL)
#define LAST_DAY 2932896LL

/* The last timestamp text written in this call: the cells of a row written together
 * share a writetime, and rows loaded together a second, so a text is often a copy of
 * the previous one (whole, or its first 19 bytes, 'YYYY-MM-DDTHH:MM:SS'). It is read
 * back from the output, which only grows. */
typedef struct {
    const char *text;  /* NULL: none yet */
    long long value, seconds;
    long per_second;
    Py_ssize_t size;
} Recent;

/* A count of 1/per_second seconds since the epoch as RFC 3339 UTC with the fraction's
 * digits (3 or 6), outside years 1-9999 as the integer. */
static char *write_timestamp(char *out, long long value, long per_second, Recent *recent) {
    if (recent->text != NULL && value == recent->value && per_second == recent->per_second) {
        memcpy(out, recent->text, (size_t)recent->size);
        recent->text = out;
        return out + recent->size;
    }
    long long seconds = floor_div(value, per_second);
    long long days = floor_div(seconds, 86400);
    if (days < FIRST_DAY || days > LAST_DAY) {
        return write_integer(out, value);
    }
    char *start = out;
    if (recent->text != NULL && seconds == recent->seconds) {
        memcpy(out, recent->text, 19);
        out += 19;
    } else {
        int second_of_day = (int)(seconds - days * 86400);
        int year, month, day;
        civil_date(days, &year, &month, &day);
        out = write_two(out, year / 100);
        out = write_two(out, year % 100);
        *out++ = '-';
        out = write_two(out, month);
        *out++ = '-';
        out = write_two(out, day);
        *out++ = 'T';
        out = write_two(out, second_of_day / 3600);
        *out++ = ':';
        out = write_two(out, second_of_day / 60 % 60);
        *out++ = ':';
        out = write_two(out, second_of_day % 60);
    }
    *out++ = '.';
    long long fraction = value - seconds * per_second;
    for (long unit = per_second / 10; unit; unit /= 10) {
        *out++ = (char)('0' + fraction / unit % 10);
    }
    *out++ = 'Z';
    recent->text = start;
    recent->value = value;
    recent->seconds = seconds;
    recent->per_second = per_second;
    recent->size = out - start;
    return out;
}

static char *write_number(char *out, const Part *part, Py_ssize_t i, Recent *recent) {
    if (is_null(part, i)) {
        memcpy(out, part->null, (size_t)part->null_size);
        return out + part->null_size;
    }
    if (part->per_second == -1) {
        Py_ssize_t size = part->offsets[i + 1] - part->offsets[i];
        memcpy(out, part->rendered + part->offsets[i], (size_t)size);
        return out + size;
    }
    long long value = part->view.itemsize == 8 ? ((const long long *)part->view.buf)[i]
                                                : ((const int *)part->view.buf)[i];
    return part->per_second ? write_timestamp(out, value, part->per_second, recent)
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

PyMODINIT_FUNC PyInit__lines(void) { return PyModule_Create(&module); }
