// Stop signals kept for the capture loop (see CVigilSys.h). A handler, not a signal mask: the
// Swift runtime and libdispatch start threads before any command code runs, and a mask set
// later on one thread would leave the others to take SIGTERM's default action.
#include <signal.h>
#include <string.h>
#include "CVigilSys.h"

static volatile sig_atomic_t caught;

static void keep(int signal)
{
    caught = signal;
}

int vigil_catch_stop_signals(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof(action));
    action.sa_handler = keep;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    int signals[] = { SIGINT, SIGTERM, SIGHUP };
    for (unsigned i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
        if (sigaction(signals[i], &action, NULL) != 0)
            return -1;
    }
    return 0;
}

int vigil_take_stop_signal(void)
{
    return __atomic_exchange_n(&caught, 0, __ATOMIC_SEQ_CST);
}
