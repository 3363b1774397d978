// A fake XRT shim (libxrt_core.so.2 with libxrt_coreutil's C device API) with the entry points
// bitfusion's XRT enricher calls, written from XRT's published xrt.h and xrt/xrt_device.h
// (2022.1): xrtDeviceOpenByBDF returns a null handle for an unknown BDF, xclGetDeviceInfo2
// fills struct xclDeviceInfo2 and returns 0, xrtDeviceClose returns 0 or an error for a
// handle it did not hand out.
//
// Configured by the JSON file named by BITFUSION_FAKE_XRT_CONFIG:
//   {"devices": [{"bdf": "0000:3b:00.1", "name": "xilinx_u250_gen3x16_xdma_shell_4_1",
//                 "ddr_size": 68719476736}]}
#include <boost/json.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <mutex>
#include <string>

#include "fakes/fake_vendor_config.h"

namespace {

struct xclDeviceInfo2 {
  unsigned int mMagic;
  char mName[256];
  unsigned short mHALMajorVersion;
  unsigned short mHALMinorVersion;
  unsigned short mVendorId;
  unsigned short mDeviceId;
  unsigned short mSubsystemId;
  unsigned short mSubsystemVendorId;
  unsigned short mDeviceVersion;
  size_t mDDRSize;
  size_t mDataAlignment;
  size_t mDDRFreeSize;
  size_t mMinTransferSize;
  unsigned short mDDRBankCount;
  unsigned short mOCLFrequency[4];
  unsigned short mPCIeLinkWidth;
  unsigned short mPCIeLinkSpeed;
  unsigned short mDMAThreads;
  unsigned short mOnChipTemp;
  unsigned short mFanTemp;
  unsigned short mVInt;
  unsigned short mVAux;
  unsigned short mVBram;
  float mCurrent;
  unsigned short mNumClocks;
  unsigned short mFanSpeed;
  bool mMigCalib;
  unsigned long long mXMCVersion;
  unsigned long long mMBVersion;
  unsigned short m12VPex;
  unsigned short m12VAux;
  unsigned long long mPexCurr;
  unsigned long long mAuxCurr;
  unsigned short mFanRpm;
  unsigned short mDimmTemp[4];
  unsigned short mSE98Temp[4];
  unsigned short m3v3Pex;
  unsigned short m3v3Aux;
  unsigned short mDDRVppBottom;
  unsigned short mDDRVppTop;
  unsigned short mSys5v5;
  unsigned short m1v2Top;
  unsigned short m1v8Top;
  unsigned short m0v85;
  unsigned short mMgt0v9;
  unsigned short m12vSW;
  unsigned short mMgtVtt;
  unsigned short m1v2Bottom;
  unsigned long long mDriverVersion;
  unsigned int mPciSlot;
  bool mIsXPR;
  unsigned long long mTimeStamp;
  char mFpga[256];
  unsigned short mPCIeLinkWidthMax;
  unsigned short mPCIeLinkSpeedMax;
  unsigned short mVccIntVol;
  unsigned short mVccIntCurr;
  unsigned short mNumCDMA;
};

struct OpenDevice {
  std::string name;
  unsigned long long ddr = 0;
};

std::mutex mu;
std::list<OpenDevice> open_devices;  // stable addresses: handles point into it

}  // namespace

BITFUSION_FAKE_API void* xrtDeviceOpenByBDF(const char* bdf) {
  std::lock_guard<std::mutex> lock(mu);
  auto config = bitfusion::fakes::LoadFakeConfig("BITFUSION_FAKE_XRT_CONFIG");
  if (bdf == nullptr || !config || !config->is_object()) {
    errno = ENODEV;
    return nullptr;
  }
  for (const auto& v : config->get_object().at("devices").as_array()) {
    const auto& o = v.as_object();
    if (o.at("bdf").as_string() != bdf) continue;
    open_devices.push_back(
        {std::string(o.at("name").as_string()), o.at("ddr_size").to_number<unsigned long long>()});
    return &open_devices.back();
  }
  errno = ENODEV;
  return nullptr;
}

BITFUSION_FAKE_API void* xrtDeviceToXclDevice(void* handle) { return handle; }

BITFUSION_FAKE_API int xclGetDeviceInfo2(void* handle, xclDeviceInfo2* info) {
  std::lock_guard<std::mutex> lock(mu);
  if (handle == nullptr || info == nullptr) return -EINVAL;
  const auto* d = static_cast<const OpenDevice*>(handle);
  std::memset(info, 0, sizeof *info);
  info->mMagic = 0x586C0C6C;
  std::snprintf(info->mName, sizeof info->mName, "%s", d->name.c_str());
  info->mHALMajorVersion = 2;
  info->mHALMinorVersion = 13;
  info->mVendorId = 0x10ee;
  info->mDDRSize = d->ddr;
  info->mDDRFreeSize = d->ddr;
  return 0;
}

BITFUSION_FAKE_API int xrtDeviceClose(void* handle) {
  std::lock_guard<std::mutex> lock(mu);
  for (auto it = open_devices.begin(); it != open_devices.end(); ++it) {
    if (&*it == handle) {
      open_devices.erase(it);
      return 0;
    }
  }
  return -EINVAL;
}
