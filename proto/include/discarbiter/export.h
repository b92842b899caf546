/* DISCARBITER_API marks what the client library exports: the C functions of
 * discarbiter.h and the C++ classes of client.hpp. A program that links the
 * static library defines DISCARBITER_STATIC (the CMake target
 * DiscArbiter::client_static and `pkg-config --static` do it for you). */
#ifndef DISCARBITER_EXPORT_H
#define DISCARBITER_EXPORT_H

#if defined(DISCARBITER_STATIC)
#define DISCARBITER_API
#elif defined(_WIN32)
#if defined(DISCARBITER_BUILDING_LIBRARY)
#define DISCARBITER_API __declspec(dllexport)
#else
#define DISCARBITER_API __declspec(dllimport)
#endif
#else
#define DISCARBITER_API __attribute__((visibility("default")))
#endif

#endif /* DISCARBITER_EXPORT_H */
