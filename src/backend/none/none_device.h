/* none_device.h: a device that holds nothing (TND_DEVICE_NONE; see none_device.c). */
#ifndef TND_BACKEND_NONE_DEVICE_H
#define TND_BACKEND_NONE_DEVICE_H

#include "backend/backend.h"

tnd_status tnd_none_device_init(const char *name, tnd_backend **out);

#endif
