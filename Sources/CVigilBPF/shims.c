#include "CVigilBPF.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define LOG_CAPACITY 16384

static char log_buffer[LOG_CAPACITY];
static size_t log_length;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static int capture(enum libbpf_print_level level, const char *format, va_list args)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    char line[1024];
    int n = vsnprintf(line, sizeof(line), format, args);
    if (n <= 0)
        return 0;
    size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    pthread_mutex_lock(&log_lock);
    if (log_length + len >= LOG_CAPACITY) {
        /* keep the newest half: the reason for a failure is printed last */
        size_t keep = LOG_CAPACITY / 2;
        memmove(log_buffer, log_buffer + log_length - keep, keep);
        log_length = keep;
    }
    if (len < LOG_CAPACITY - log_length) {
        memcpy(log_buffer + log_length, line, len);
        log_length += len;
    }
    pthread_mutex_unlock(&log_lock);
    return n;
}

void vigil_bpf_capture_log(void)
{
    libbpf_set_print(capture);
}

size_t vigil_bpf_take_log(char *buf, size_t size)
{
    if (size == 0)
        return 0;
    pthread_mutex_lock(&log_lock);
    size_t n = log_length < size - 1 ? log_length : size - 1;
    memcpy(buf, log_buffer + log_length - n, n);
    buf[n] = 0;
    log_length = 0;
    pthread_mutex_unlock(&log_lock);
    return n;
}

int vigil_bpf_set_rodata(struct bpf_object *obj, const char *variable, const void *value, size_t value_size)
{
    struct bpf_map *rodata = NULL, *map;
    bpf_object__for_each_map(map, obj) {
        const char *name = bpf_map__name(map);
        size_t len = strlen(name);
        if (len >= 7 && strcmp(name + len - 7, ".rodata") == 0) {
            rodata = map;
            break;
        }
    }
    if (!rodata)
        return -ENOENT;
    size_t size = 0;
    char *data = bpf_map__initial_value(rodata, &size);
    struct btf *btf = bpf_object__btf(obj);
    if (!data || !btf)
        return -ENOENT;
    int id = btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC);
    if (id < 0)
        return id;
    const struct btf_type *sec = btf__type_by_id(btf, id);
    const struct btf_var_secinfo *var = btf_var_secinfos(sec);
    for (int i = 0; i < btf_vlen(sec); i++, var++) {
        const struct btf_type *t = btf__type_by_id(btf, var->type);
        if (strcmp(btf__name_by_offset(btf, t->name_off), variable) != 0)
            continue;
        if (var->offset + value_size > size || var->size != value_size)
            return -EINVAL;
        memcpy(data + var->offset, value, value_size);
        return 0;
    }
    return -ENOENT;
}

int vigil_bpf_attach_empty(const char *category, const char *name, int *program)
{
    struct bpf_insn empty[2] = {
        { .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 0 },
        { .code = BPF_JMP | BPF_EXIT },
    };
    enum bpf_prog_type type = category ? BPF_PROG_TYPE_TRACEPOINT : BPF_PROG_TYPE_RAW_TRACEPOINT;
    int prog = bpf_prog_load(type, "vigil_floor", "GPL", empty, 2, NULL);
    if (prog < 0)
        return -errno;
    *program = -1;
    if (!category) {
        int fd = bpf_raw_tracepoint_open(name, prog);
        int err = errno;
        if (fd < 0) {
            close(prog);
            return -err;
        }
        *program = prog;
        return fd;
    }
    char path[512], id_text[32] = {0};
    int id_fd = -1;
    const char *roots[] = { "/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events" };
    for (int i = 0; i < 2 && id_fd < 0; i++) {
        snprintf(path, sizeof(path), "%s/%s/%s/id", roots[i], category, name);
        id_fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (id_fd < 0 || read(id_fd, id_text, sizeof(id_text) - 1) <= 0) {
        int err = id_fd < 0 ? errno : EIO;
        if (id_fd >= 0)
            close(id_fd);
        close(prog);
        return -err;
    }
    close(id_fd);
    struct perf_event_attr attr = {
        .type = PERF_TYPE_TRACEPOINT,
        .size = sizeof(attr),
        .config = strtoull(id_text, NULL, 10),
        .sample_period = 1,
        .wakeup_events = 1,
    };
    int fd = (int)syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0 || ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog) < 0 || ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) < 0) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        close(prog);
        return -err;
    }
    *program = prog; /* the perf event holds it too */
    return fd;
}

bool vigil_bpf_kernel_has_task_btf(void)
{
    return libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_get_current_task_btf, NULL) == 1
        && libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_storage_get, NULL) == 1;
}

bool vigil_bpf_kernel_has_btf_casts(void)
{
    struct btf *vmlinux = btf__load_vmlinux_btf();
    if (libbpf_get_error(vmlinux))
        return false;
    bool found = btf__find_by_name_kind(vmlinux, "bpf_rdonly_cast", BTF_KIND_FUNC) > 0;
    btf__free(vmlinux);
    return found && libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_task_pt_regs, NULL) == 1;
}
