/* An out-of-tree C99 program against the installed SDK (tests/sdk): every
 * call of discarbiter.h a burner makes, against a live discarbiterd with two
 * simulated drives (DISCARBITER_ENDPOINT names it). Prints each step; exits
 * non-zero at the first mismatch. The same file is cross-built for Windows
 * and run under Wine against discarbiter.dll (tests/windows). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "discarbiter/discarbiter.h"

static int failures = 0;

/* Prints the step and, on a mismatch, the HRESULTs and the last error's
 * message. */
static int check(int ok, const char* step, DA_HRESULT got, DA_HRESULT want) {
  char message[512] = "";
  if (ok) {
    printf("ok   %s\n", step);
    return 1;
  }
  da_get_last_error_message(message, sizeof message, NULL);
  printf("FAIL %s: got 0x%08lX, want 0x%08lX (%s)\n", step, (unsigned long)(uint32_t)got,
         (unsigned long)(uint32_t)want, message);
  ++failures;
  return 0;
}

#define EXPECT_HR(call, want, step)          \
  do {                                       \
    DA_HRESULT hr_ = (call);                 \
    check(hr_ == (want), step, hr_, (want)); \
  } while (0)
#define EXPECT(cond, step) check((cond) != 0, step, 0, 0)

/* The status document into a buffer of the size it asks for. Its size
 * changes between calls (the uptime grows), so fetch in a loop. */
static DA_HRESULT get_status_json(da_client* client, char** status) {
  size_t needed = 0;
  DA_HRESULT hr = da_get_status_json(client, NULL, 0, &needed);
  *status = NULL;
  while (hr == DA_E_INSUFFICIENT_BUFFER) {
    char* grown = (char*)realloc(*status, needed);
    if (grown == NULL)
      break;
    *status = grown;
    hr = da_get_status_json(client, *status, needed, &needed);
  }
  if (DA_FAILED(hr)) {
    free(*status);
    *status = NULL;
  }
  return hr;
}

static DA_HRESULT connect_as(const char* name, da_client** client) {
  da_connect_options options;
  memset(&options, 0, sizeof options);
  options.struct_size = sizeof options;
  options.endpoint = NULL; /* DISCARBITER_ENDPOINT */
  options.client_name = name;
  options.timeout_ms = 10000;
  return da_connect(&options, client);
}

int main(void) {
  const char* drive = "sim0";
  da_client* client = NULL;
  da_client* other = NULL;
  da_drive_info drives[8];
  size_t count = 0;
  uint32_t lock_count = 99;
  da_owner owner;
  uint8_t sense[32];
  da_command_result result;
  uint32_t max_transfer = 0;
  size_t needed = 0;
  char small[8];
  char* status = NULL;
  char message[512];
  static uint8_t written[2048];
  static uint8_t read_back[2048];
  size_t i;

  printf("library %s\n", da_version());
  EXPECT_HR(connect_as("c_consumer", &client), DA_S_OK, "da_connect");
  if (client == NULL)
    return 1;
  EXPECT_HR(connect_as("c_consumer_other", &other), DA_S_OK, "da_connect (a second client)");
  if (other == NULL)
    return 1;

  EXPECT_HR(da_list_drives(client, drives, 8, &count), DA_S_OK, "da_list_drives");
  EXPECT(count == 2 && strcmp(drives[0].id, "sim0") == 0 && strcmp(drives[1].id, "sim1") == 0,
         "two simulated drives, sim0 and sim1");
  EXPECT(drives[0].max_transfer > 0, "a drive's max_transfer");
  EXPECT_HR(da_list_drives(client, drives, 1, &count), DA_E_INSUFFICIENT_BUFFER,
            "da_list_drives with room for one");
  EXPECT(count == 2, "... says how many there are");

  EXPECT_HR(da_acquire_exclusive_access(client, drive, 0, 0, &lock_count), DA_S_OK,
            "da_acquire_exclusive_access");
  EXPECT(lock_count == 1, "... lock count 1");
  memset(&owner, 0, sizeof owner);
  EXPECT_HR(da_exclusive_access_owner(client, drive, &owner), DA_S_OK, "da_exclusive_access_owner");
  EXPECT(owner.locked && strcmp(owner.client_name, "c_consumer") == 0 && owner.lock_count == 1,
         "... names this client, lock count 1");

  {
    const uint8_t inquiry[6] = {0x12, 0, 0, 0, 36, 0};
    uint8_t data[36];
    memset(data, 0, sizeof data);
    EXPECT_HR(da_send_command_get_data_from_device(client, drive, inquiry, sizeof inquiry, sense,
                                                   sizeof sense, 0, data, sizeof data, &result),
              DA_S_OK, "INQUIRY (da_send_command_get_data_from_device)");
    EXPECT(result.bytes_transferred == 36 && (data[0] & 0x1F) == 0x05 &&
               memcmp(&data[8], "DISCARB ", 8) == 0,
           "... 36 bytes of an MMC device, vendor DISCARB");
  }
  {
    const uint8_t test_unit_ready[6] = {0, 0, 0, 0, 0, 0};
    EXPECT_HR(da_send_command_no_data(client, drive, test_unit_ready, sizeof test_unit_ready, sense,
                                      sizeof sense, 0, &result),
              DA_S_OK, "TEST UNIT READY (da_send_command_no_data)");
    EXPECT(result.scsi_status == 0 && result.sense_length == 0, "... GOOD, no sense");
  }
  {
    /* One 2048-byte block at LBA 7, read back. */
    const uint8_t write10[10] = {0x2A, 0, 0, 0, 0, 7, 0, 0, 1, 0};
    const uint8_t read10[10] = {0x28, 0, 0, 0, 0, 7, 0, 0, 1, 0};
    for (i = 0; i < sizeof written; ++i)
      written[i] = (uint8_t)(i * 7 + 3);
    EXPECT_HR(
        da_send_command_send_data_to_device(client, drive, write10, sizeof write10, sense,
                                            sizeof sense, 0, written, sizeof written, &result),
        DA_S_OK, "WRITE(10) (da_send_command_send_data_to_device)");
    EXPECT(result.bytes_transferred == sizeof written, "... 2048 bytes sent");
    EXPECT_HR(
        da_send_command_get_data_from_device(client, drive, read10, sizeof read10, sense,
                                             sizeof sense, 0, read_back, sizeof read_back, &result),
        DA_S_OK, "READ(10)");
    EXPECT(result.bytes_transferred == sizeof read_back &&
               memcmp(written, read_back, sizeof written) == 0,
           "... the block written");
  }
  {
    /* Beyond the medium: CHECK CONDITION, ILLEGAL REQUEST / LBA out of range. */
    const uint8_t read10[10] = {0x28, 0, 0x7F, 0xFF, 0xFF, 0, 0, 0, 1, 0};
    memset(sense, 0, sizeof sense);
    EXPECT_HR(
        da_send_command_get_data_from_device(client, drive, read10, sizeof read10, sense,
                                             sizeof sense, 0, read_back, sizeof read_back, &result),
        DA_S_IMAPI_COMMAND_HAS_SENSE_DATA, "READ(10) beyond the medium");
    EXPECT(result.scsi_status == 0x02 && result.sense_length >= 14 && (sense[2] & 0x0F) == 0x05 &&
               sense[12] == 0x21,
           "... CHECK CONDITION, sense 5/21/00");
    if (DA_SUCCEEDED(da_explain_sense(sense, result.sense_length, message, sizeof message, NULL)))
      printf("     %s\n", message);
  }

  EXPECT_HR(da_get_max_transfer(client, NULL, &max_transfer), DA_S_OK,
            "da_get_max_transfer (the service's)");
  EXPECT(max_transfer >= 65536, "... at least 64 KiB");
  EXPECT_HR(da_get_max_transfer(client, drive, &max_transfer), DA_S_OK,
            "da_get_max_transfer (sim0's)");
  EXPECT(max_transfer > 0, "... not 0");

  EXPECT_HR(da_get_status_json(client, small, sizeof small, &needed), DA_E_INSUFFICIENT_BUFFER,
            "da_get_status_json into 8 bytes");
  EXPECT(needed > sizeof small, "... says how many it needs");
  EXPECT_HR(get_status_json(client, &status), DA_S_OK, "da_get_status_json into that many");
  if (status == NULL)
    return 1;
  EXPECT(strstr(status, "\"drives\"") != NULL && strstr(status, "c_consumer") != NULL,
         "... a status document naming this client");
  free(status);

  EXPECT_HR(da_acquire_exclusive_access(client, "no-such-drive", 0, 0, NULL), DA_E_DEV_NOT_EXIST,
            "da_acquire_exclusive_access of an unknown drive");
  EXPECT_HR(da_get_last_error_message(message, sizeof message, NULL), DA_S_OK,
            "da_get_last_error_message");
  printf("     \"%s\"\n", message);
  EXPECT(strstr(message, "no-such-drive") != NULL, "... names the drive");

  EXPECT_HR(da_acquire_exclusive_access(other, drive, 0, 0, NULL), DA_E_IMAPI_RECORDER_LOCKED,
            "the second client's acquire");
  memset(&owner, 0, sizeof owner);
  EXPECT_HR(da_exclusive_access_owner(other, drive, &owner), DA_S_OK,
            "da_exclusive_access_owner for the second client");
  EXPECT(owner.locked && strcmp(owner.client_name, "c_consumer") == 0 && owner.pid != 0 &&
             owner.since[0] != '\0',
         "... the first client holds it, with its pid and since");

  EXPECT_HR(da_release_exclusive_access(client, drive, &lock_count), DA_S_OK,
            "da_release_exclusive_access");
  EXPECT(lock_count == 0, "... lock count 0");
  EXPECT_HR(da_exclusive_access_owner(other, drive, &owner), DA_S_OK,
            "da_exclusive_access_owner after the release");
  EXPECT(!owner.locked, "... nobody");

  da_disconnect(other);
  da_disconnect(client);
  printf("%s: %d failure(s)\n", failures == 0 ? "PASSED" : "FAILED", failures);
  return failures == 0 ? 0 : 1;
}
