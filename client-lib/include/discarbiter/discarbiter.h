/* The DiscArbiter C ABI: exclusive access to optical recorders through the
 * discarbiterd service, for C and for any language with a foreign-function
 * interface (C#'s P/Invoke, Delphi, Python's ctypes). C99; opaque handles;
 * no exception crosses it.
 *
 * Functions are named after IMAPI2's IDiscRecorder2 / IDiscRecorder2Ex and
 * return the HRESULT the service returned (DESIGN.md "Error codes"); the
 * library's own failures are HRESULTs too (DA_E_SERVICE_UNAVAILABLE,
 * DA_E_CONNECTION_LOST, E_INVALIDARG for an argument refused before anything
 * is sent). da_get_last_error_message() gives the message naming what failed.
 *
 *   da_connect_options options = {sizeof options, NULL, "MyBurner", 0};
 *   da_client* client;
 *   if (DA_FAILED(da_connect(&options, &client))) { ... }
 *   da_acquire_exclusive_access(client, "sim0", 30000, 0, NULL);
 *   uint8_t cdb[6] = {0x12, 0, 0, 0, 36, 0}, data[36], sense[18];
 *   da_command_result result;
 *   da_send_command_get_data_from_device(client, "sim0", cdb, sizeof cdb, sense, sizeof sense,
 *                                        0, data, sizeof data, &result);
 *   da_release_exclusive_access(client, "sim0", NULL);
 *   da_disconnect(client);
 *
 * Threads: a da_client may be used from several threads at once (one
 * session, replies matched by request id); da_disconnect must not race with
 * another call on the same client. The last error's message is kept per
 * thread, as GetLastError is.
 *
 * Strings are UTF-8 and NUL-terminated. A function that fills a caller's
 * buffer with text returns HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER)
 * when it does not fit and sets *needed (with the NUL) if needed is not
 * NULL; fixed-size fields of the structs are truncated at a character
 * boundary instead. */
#ifndef DISCARBITER_H
#define DISCARBITER_H

#include <stddef.h>
#include <stdint.h>

#include "discarbiter/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An HRESULT: negative is a failure. */
typedef int32_t DA_HRESULT;
/* DA_HRESULT_C(x): x as a DA_HRESULT; static_cast in C++, so that a C++
 * program built with -Wold-style-cast compiles the macros below cleanly. */
#ifdef __cplusplus
#define DA_HRESULT_C(x) static_cast<DA_HRESULT>(x)
#else
#define DA_HRESULT_C(x) ((DA_HRESULT)(x))
#endif
#define DA_SUCCEEDED(hr) (DA_HRESULT_C(hr) >= 0)
#define DA_FAILED(hr) (DA_HRESULT_C(hr) < 0)

#define DA_S_OK DA_HRESULT_C(0x00000000)
#define DA_S_IMAPI_COMMAND_HAS_SENSE_DATA DA_HRESULT_C(0x00AA0200)
#define DA_E_FAIL DA_HRESULT_C(0x80004005u)
#define DA_E_OUTOFMEMORY DA_HRESULT_C(0x8007000Eu)
#define DA_E_INVALIDARG DA_HRESULT_C(0x80070057u)
#define DA_E_ACCESSDENIED DA_HRESULT_C(0x80070005u)
#define DA_E_INVALID_HANDLE DA_HRESULT_C(0x80070006u)
#define DA_E_DEV_NOT_EXIST DA_HRESULT_C(0x80070037u)
#define DA_E_NOT_LOCKED DA_HRESULT_C(0x8007009Eu)
#define DA_E_INSUFFICIENT_BUFFER DA_HRESULT_C(0x8007007Au)
#define DA_E_IMAPI_RECORDER_COMMAND_TIMEOUT DA_HRESULT_C(0xC0AA020Du)
#define DA_E_IMAPI_RECORDER_LOCKED DA_HRESULT_C(0xC0AA0210u)
#define DA_E_IMAPI_RECORDER_CLIENT_NAME_IS_NOT_VALID DA_HRESULT_C(0xC0AA0211u)
#define DA_E_BAD_FRAME DA_HRESULT_C(0x80AB0001u)
#define DA_E_UNSUPPORTED_PROTOCOL DA_HRESULT_C(0x80AB0002u)
#define DA_E_HELLO_REQUIRED DA_HRESULT_C(0x80AB0003u)
#define DA_E_UNKNOWN_REQUEST DA_HRESULT_C(0x80AB0004u)
#define DA_E_FRAME_TOO_LARGE DA_HRESULT_C(0x80AB0005u)
#define DA_E_SERVICE_UNAVAILABLE DA_HRESULT_C(0x80AB0006u)
#define DA_E_CONNECTION_LOST DA_HRESULT_C(0x80AB0007u)
#define DA_E_LIMIT_REACHED DA_HRESULT_C(0x80AB0008u)
#define DA_E_SERVICE_STOPPING DA_HRESULT_C(0x80AB0009u)

/* One session with the service; its locks die with it. */
typedef struct da_client da_client;

typedef struct da_connect_options {
  uint32_t struct_size;    /* sizeof(da_connect_options) */
  const char* endpoint;    /* NULL or "": DISCARBITER_ENDPOINT, else the platform default */
  const char* client_name; /* 1-63 of [0-9A-Za-z .,:;_-] */
  uint32_t timeout_ms;     /* connect + hello, and each plain request; 0: 5000 */
} da_connect_options;

typedef struct da_drive_info {
  char id[64];
  char path[260];
  char vendor[16];
  char product[32];
  char revision[16];
  char state[16];        /* free|owned|removed|error */
  uint32_t max_transfer; /* bytes, the largest transfer of one command */
} da_drive_info;

/* IDiscRecorder2::get_ExclusiveAccessOwner, with the session's identity. */
typedef struct da_owner {
  int32_t locked; /* 0: nobody holds the drive (the other fields are empty) */
  char client_name[64];
  uint64_t session;
  uint32_t pid;
  uint32_t lock_count;
  char user[256];
  char since[40]; /* RFC 3339 UTC */
  int32_t force;
} da_owner;

/* What one SCSI command did. */
typedef struct da_command_result {
  uint8_t scsi_status;
  uint32_t sense_length;      /* bytes of sense written to the caller's sense buffer */
  uint32_t bytes_transferred; /* data-in: bytes written to the buffer; data-out: bytes sent */
} da_command_result;

/* "0.1.0": the library's version. */
DISCARBITER_API const char* da_version(void);

/* Connects and says hello. On failure *client is NULL. */
DISCARBITER_API DA_HRESULT da_connect(const da_connect_options* options, da_client** client);
/* Closes the session (the service frees its locks) and frees the handle.
 * NULL is allowed. */
DISCARBITER_API void da_disconnect(da_client* client);

/* Up to `capacity` drives into `drives`; *count is the number of drives the
 * service has (more than capacity: DA_E_INSUFFICIENT_BUFFER). */
DISCARBITER_API DA_HRESULT da_list_drives(da_client* client, da_drive_info* drives, size_t capacity,
                                          size_t* count);

/* IDiscRecorder2::AcquireExclusiveAccess: wait_ms 0 fails at once with
 * DA_E_IMAPI_RECORDER_LOCKED if another client holds the drive; force locks
 * even with a file system mounted. lock_count (may be NULL): the count after. */
DISCARBITER_API DA_HRESULT da_acquire_exclusive_access(da_client* client, const char* drive,
                                                       uint32_t wait_ms, int32_t force,
                                                       uint32_t* lock_count);
/* IDiscRecorder2::ReleaseExclusiveAccess. lock_count (may be NULL): the
 * count left; 0 frees the drive. */
DISCARBITER_API DA_HRESULT da_release_exclusive_access(da_client* client, const char* drive,
                                                       uint32_t* lock_count);
DISCARBITER_API DA_HRESULT da_exclusive_access_owner(da_client* client, const char* drive,
                                                     da_owner* owner);

/* IDiscRecorder2Ex::SendCommand…, for the lock's owner. cdb: 6-16 bytes.
 * sense (may be NULL when sense_size is 0): filled on CHECK CONDITION, and
 * the call returns DA_S_IMAPI_COMMAND_HAS_SENSE_DATA. timeout_s 0: the
 * service's default for the opcode. A transfer above da_get_max_transfer is
 * refused with DA_E_INVALIDARG before anything is sent. result must not be
 * NULL. */
DISCARBITER_API DA_HRESULT da_send_command_no_data(da_client* client, const char* drive,
                                                   const uint8_t* cdb, size_t cdb_size,
                                                   uint8_t* sense, size_t sense_size,
                                                   uint32_t timeout_s, da_command_result* result);
DISCARBITER_API DA_HRESULT da_send_command_send_data_to_device(
    da_client* client, const char* drive, const uint8_t* cdb, size_t cdb_size, uint8_t* sense,
    size_t sense_size, uint32_t timeout_s, const void* buffer, size_t buffer_size,
    da_command_result* result);
DISCARBITER_API DA_HRESULT da_send_command_get_data_from_device(
    da_client* client, const char* drive, const uint8_t* cdb, size_t cdb_size, uint8_t* sense,
    size_t sense_size, uint32_t timeout_s, void* buffer, size_t buffer_size,
    da_command_result* result);

/* The largest transfer of one command: the drive's (drive not NULL) or the
 * service's (drive NULL). */
DISCARBITER_API DA_HRESULT da_get_max_transfer(da_client* client, const char* drive,
                                               uint32_t* bytes);

/* The status document as JSON text (DESIGN.md "JSON status"). Its size
 * changes from one call to the next (uptime, counters grow): after a sizing
 * call, fetch in a loop while it returns DA_E_INSUFFICIENT_BUFFER, growing the
 * buffer to *needed each time. */
DISCARBITER_API DA_HRESULT da_get_status_json(da_client* client, char* buffer, size_t size,
                                              size_t* needed);

/* The message of the last failure on this thread ("" after a success). */
DISCARBITER_API DA_HRESULT da_get_last_error_message(char* buffer, size_t size, size_t* needed);
/* "E_IMAPI_RECORDER_LOCKED"; "HRESULT 0x…" for a code the library does not know. */
DISCARBITER_API DA_HRESULT da_get_error_name(DA_HRESULT hr, char* buffer, size_t size,
                                             size_t* needed);
/* "sense 5/24/00: invalid field in CDB": the library's sense table. */
DISCARBITER_API DA_HRESULT da_explain_sense(const uint8_t* sense, size_t sense_size, char* buffer,
                                            size_t size, size_t* needed);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* DISCARBITER_H */
