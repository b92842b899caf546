#include "host/uevent.hpp"

#include <gtest/gtest.h>

namespace discarbiter::host {
namespace {

using namespace std::string_literals;

TEST(Uevent, AKernelMessageGivesActionSubsystemAndDeviceName) {
  const auto m =
      "add@/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/block/sr0\0"
      "ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:01.1/ata2/host1/target1:0:0/1:0:0:0/"
      "block/sr0\0SUBSYSTEM=block\0MAJOR=11\0MINOR=0\0DEVNAME=sr0\0DEVTYPE=disk\0SEQNUM=1021\0"s;
  const auto e = parse_uevent(m);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->action, "add");
  EXPECT_EQ(e->subsystem, "block");
  EXPECT_EQ(e->devname, "sr0");
}

TEST(Uevent, DirectoriesInDevnameAreDropped) {
  const auto e =
      parse_uevent("remove@/x\0ACTION=remove\0SUBSYSTEM=scsi_generic\0DEVNAME=bsg/sg1\0"s);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->action, "remove");
  EXPECT_EQ(e->devname, "sg1");
}

TEST(Uevent, UdevsOwnAndMalformedMessagesAreIgnored) {
  EXPECT_FALSE(parse_uevent("libudev\0\xfe\xed\xca\xfe"s).has_value());
  EXPECT_FALSE(parse_uevent("add@/x"s).has_value());                 // no fields at all
  EXPECT_FALSE(parse_uevent("add@/x\0DEVNAME=sr0\0"s).has_value());  // no action
  EXPECT_FALSE(parse_uevent(""s).has_value());
}

}  // namespace
}  // namespace discarbiter::host
