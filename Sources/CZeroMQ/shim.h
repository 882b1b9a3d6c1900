#ifndef SPOOL_CZEROMQ_SHIM_H
#define SPOOL_CZEROMQ_SHIM_H
#include <zmq.h>
#include <sys/eventfd.h>

// zmq_pollitem_t.events is a short; macros import as Int32, so give Swift typed constants.
static const short CZMQ_POLLIN_SHORT = ZMQ_POLLIN;
static const short CZMQ_POLLOUT_SHORT = ZMQ_POLLOUT;
static const short CZMQ_POLLERR_SHORT = ZMQ_POLLERR;
#endif
