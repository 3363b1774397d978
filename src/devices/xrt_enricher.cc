#include "devices/xrt_enricher.h"

#include "bitfusion/log.h"
#include "devices/dynamic_library.h"

namespace bitfusion {
namespace {

// From XRT's xrt.h and xrt/xrt_device.h (release 2022.1; Debian libxrt-dev 202210.2.13). The
// struct is filled by the library, so its layout must match the published one field by field.
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

using xrtDeviceHandle = void*;
using xclDeviceHandle = void*;
using OpenByBdfFn = xrtDeviceHandle(const char*);
using ToXclFn = xclDeviceHandle(xrtDeviceHandle);
using CloseFn = int(xrtDeviceHandle);
using InfoFn = int(xclDeviceHandle, xclDeviceInfo2*);

std::string Terminated(const char* buffer, std::size_t size) {
  std::size_t n = 0;
  while (n < size && buffer[n] != '\0') ++n;
  return std::string(buffer, n);
}

}  // namespace

Status EnrichWithXrt(const XrtEnricherOptions& options, std::vector<Device>& devices) {
  bool any_xilinx = false;
  for (const auto& d : devices) any_xilinx = any_xilinx || d.vendor == "Xilinx";
  if (!any_xilinx) return Status::OK();

  BITFUSION_ASSIGN_OR_RETURN(auto lib, DynamicLibrary::Open(options.libraries));
  BITFUSION_ASSIGN_OR_RETURN(auto open, lib.Function<OpenByBdfFn>("xrtDeviceOpenByBDF"));
  BITFUSION_ASSIGN_OR_RETURN(auto to_xcl, lib.Function<ToXclFn>("xrtDeviceToXclDevice"));
  BITFUSION_ASSIGN_OR_RETURN(auto close, lib.Function<CloseFn>("xrtDeviceClose"));
  BITFUSION_ASSIGN_OR_RETURN(auto info_fn, lib.Function<InfoFn>("xclGetDeviceInfo2"));
  for (auto& d : devices) {
    if (d.vendor != "Xilinx") continue;
    // XRT's C entry points report failure as a null handle; its C++ core may also throw
    // through them, which must not escape into bitfusion's callers.
    try {
      xrtDeviceHandle handle = open(d.pci_address.c_str());
      if (handle == nullptr) {
        LogAt(LogLevel::kWarning, "XRT cannot open FPGA ", d.pci_address,
              "; keeping what sysfs says about it");
        continue;
      }
      xclDeviceInfo2 info{};
      if (xclDeviceHandle xcl = to_xcl(handle); xcl != nullptr && info_fn(xcl, &info) == 0) {
        const std::string name = Terminated(info.mName, sizeof info.mName);
        if (!name.empty()) d.model = name;
        if (info.mDDRSize > 0) d.memory_bytes = info.mDDRSize;
        d.properties["xrt_hal_version"] =
            std::to_string(info.mHALMajorVersion) + "." + std::to_string(info.mHALMinorVersion);
      }
      close(handle);
    } catch (const std::exception& e) {
      LogAt(LogLevel::kWarning, "XRT failed on FPGA ", d.pci_address, ": ", e.what());
    }
  }
  return Status::OK();
}

}  // namespace bitfusion
