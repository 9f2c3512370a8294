// Generated from workbench/attestation/verify/claims.py; do not edit. Regenerate:
//   python -m workbench.attestation.verify.claims > extensions/src/teeClaims.ts

export interface ITeeClaims {
  name: string;
  measurement: string;
  signer: string;
  svn: string;
  identifying: string[];
  pin_one_of: string[];
  pin_also: string[];
  panel: Array<[string, string]>;
  flags: { [claim: string]: string[] };
}

export const TEE_CLAIMS: { [tee: string]: ITeeClaims } = {
  "sgx": {
    "name": "Intel SGX enclave",
    "measurement": "mrenclave",
    "signer": "mrsigner",
    "svn": "isvsvn",
    "identifying": ["mrenclave", "mrsigner", "isvprodid", "isvsvn", "debug"],
    "pin_one_of": ["mrenclave", "mrsigner"],
    "pin_also": [],
    "panel": [["Signer (MRSIGNER)", "mrsigner"], ["Product ID", "isvprodid"], ["SVN", "isvsvn"], ["FMSPC", "fmspc"]],
    "flags": {}
  },
  "tdx": {
    "name": "Intel TDX confidential VM",
    "measurement": "mrtd",
    "signer": "signer",
    "svn": "tee_tcb_svn",
    "identifying": ["mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "debug"],
    "pin_one_of": ["mrtd"],
    "pin_also": ["rtmr1", "rtmr2"],
    "panel": [["RTMR0", "rtmr0"], ["RTMR1", "rtmr1"], ["RTMR2", "rtmr2"], ["RTMR3", "rtmr3"], ["TEE TCB SVN", "tee_tcb_svn"], ["FMSPC", "fmspc"]],
    "flags": {}
  },
  "snp": {
    "name": "AMD SEV-SNP confidential VM",
    "measurement": "measurement",
    "signer": "signer",
    "svn": "reported_tcb",
    "identifying": ["measurement", "host_data", "vmpl", "debug", "signer"],
    "pin_one_of": ["measurement"],
    "pin_also": [],
    "panel": [["Signer", "signer"], ["Product", "product"], ["Guest SVN", "guest_svn"], ["Reported TCB", "reported_tcb"], ["VMPL", "vmpl"]],
    "flags": {"policy_flags": ["smt", "migrate_ma", "debug", "single_socket", "cxl_allow", "mem_aes_256_xts", "rapl_dis", "ciphertext_hiding_dram", "page_swap_disable"], "platform_flags": ["smt_enabled", "tsme_enabled", "ecc_enabled", "rapl_disabled", "ciphertext_hiding_dram_enabled", "alias_check_complete", "tio_enabled"]}
  },
  "az-snp-vtpm": {
    "name": "Azure confidential VM (AMD SEV-SNP, vTPM)",
    "measurement": "measurement",
    "signer": "signer",
    "svn": "reported_tcb",
    "identifying": ["measurement", "pcrs", "host_data", "vm_configuration", "debug", "signer"],
    "pin_one_of": ["pcrs"],
    "pin_also": [],
    "panel": [["PCRs", "pcrs"], ["VM configuration", "vm_configuration"], ["Signer", "signer"], ["Product", "product"], ["Reported TCB", "reported_tcb"], ["VM id", "vm_unique_id"]],
    "flags": {"policy_flags": ["smt", "migrate_ma", "debug", "single_socket", "cxl_allow", "mem_aes_256_xts", "rapl_dis", "ciphertext_hiding_dram", "page_swap_disable"], "platform_flags": ["smt_enabled", "tsme_enabled", "ecc_enabled", "rapl_disabled", "ciphertext_hiding_dram_enabled", "alias_check_complete", "tio_enabled"], "vm_configuration": ["secure_boot", "tpm_enabled", "console_enabled", "tpm_persisted"]}
  },
  "az-tdx-vtpm": {
    "name": "Azure confidential VM (Intel TDX, vTPM)",
    "measurement": "mrtd",
    "signer": "signer",
    "svn": "tee_tcb_svn",
    "identifying": ["mrtd", "pcrs", "rtmr0", "rtmr1", "rtmr2", "rtmr3", "vm_configuration", "debug"],
    "pin_one_of": ["pcrs"],
    "pin_also": [],
    "panel": [["PCRs", "pcrs"], ["VM configuration", "vm_configuration"], ["TEE TCB SVN", "tee_tcb_svn"], ["FMSPC", "fmspc"], ["VM id", "vm_unique_id"]],
    "flags": {"vm_configuration": ["secure_boot", "tpm_enabled", "console_enabled", "tpm_persisted"]}
  },
  "simulated": {
    "name": "Simulated TEE",
    "measurement": "measurement",
    "signer": "platform_key",
    "svn": "svn",
    "identifying": ["measurement", "platform_key", "debug"],
    "pin_one_of": ["measurement"],
    "pin_also": [],
    "panel": [["Platform key", "platform_key"], ["Runtime", "runtime"]],
    "flags": {}
  }
};
