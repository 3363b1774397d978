// The readers of EC2 Query API answers (XML), kept apart from the calls so that they can be
// tested and fuzzed without an endpoint: error bodies, the <ActionResponse> document, and the
// parts of DescribeInstances, DescribeInstanceTypes, DescribeImages and RunInstances that
// ec2:// reads. Pure functions: no I/O.
#pragma once

#include <boost/property_tree/ptree.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "bitfusion/machine.h"
#include "bitfusion/status.h"

namespace bitfusion::internal {

using Ec2Xml = boost::property_tree::ptree;

/// An error answer's <Code> and <Message>; `code` is empty when the body has none.
struct Ec2ErrorBody {
  std::string code;
  std::string message;
};
Ec2ErrorBody ParseEc2Error(std::string_view body);

/// The one child of a successful answer's document (the <ActionResponse> element); Internal
/// with the parser's words when the XML does not parse, or when the document is empty.
Result<Ec2Xml> ParseEc2Xml(std::string_view body);

/// DescribeInstanceTypes: the types of <instanceTypeSet>, in the answer's order.
std::vector<MachineType> Ec2InstanceTypes(const Ec2Xml& answer);
/// DescribeInstances: every instance of every reservation, with what the XML says of it (the
/// SSH user and what the type catalogue adds are the provisioner's).
std::vector<MachineInfo> Ec2Instances(const Ec2Xml& answer);
/// RunInstances: the instances made (id, type, state, private address, zone).
std::vector<MachineInfo> Ec2LaunchedInstances(const Ec2Xml& answer);
/// DescribeImages: the id of the newest image by creation date, then name; empty when none.
std::string Ec2NewestImageId(const Ec2Xml& answer);

}  // namespace bitfusion::internal
