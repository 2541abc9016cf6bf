/** Realistic ~1 KB Falco events: varied rules and priorities, int64 evt.time, a marker n for counting. */
const RULES: Array<[string, string, string]> = [
  ['Read sensitive file untrusted', 'Warning', 'Sensitive file opened for reading by non-trusted program'],
  ['Terminal shell in container', 'Notice', 'A shell was spawned in a container with an attached terminal'],
  ['Write below binary dir', 'Error', 'File below a known binary directory opened for writing'],
  ['Drop and execute new binary in container', 'Critical', 'Executing binary not part of base image'],
  ['Contact K8S API Server From Container', 'Notice', 'Unexpected connection to K8s API Server from container'],
  ['Clear Log Activities', 'Warning', 'Log files were tampered'],
];

export function benchEvent(n: number): string {
  const [rule, priority, text] = RULES[((n % RULES.length) + RULES.length) % RULES.length];
  const ns = 1743606903434319636n + BigInt(n) * 1000n;
  return (
    `{"hostname":"node-${n % 7}","output":"15:15:03.434319636: ${priority} ${text} (user=root user_loginuid=-1 process=cat proc_exepath=/usr/bin/cat parent=bash command=cat /etc/shadow terminal=34817 container_id=3f1a2b4c5d6e container_name=payments-api n=${n})",` +
    `"output_fields":{"container.id":"3f1a2b4c5d6e","container.image.repository":"registry.example.com/payments/api","container.name":"payments-api","evt.time":${ns},"evt.type":"openat","fd.name":"/etc/shadow","k8s.ns.name":"payments","k8s.pod.name":"payments-api-7c9d8f6b5-x2k4q","proc.cmdline":"cat /etc/shadow","proc.exepath":"/usr/bin/cat","proc.name":"cat","proc.pid":${4000 + (n % 5000)},"proc.pname":"bash","proc.tty":34817,"user.loginuid":-1,"user.name":"root","user.uid":0},` +
    `"priority":"${priority}","rule":"${rule}","source":"syscall","tags":["T1555","container","filesystem","host","maturity_stable","mitre_credential_access"],"time":"2025-04-02T15:15:03.434319636Z"}`
  );
}

/** The marker of an event, wherever its output text appears (webhook body, Slack text, CloudWatch message, SNS message). */
export const MARKER = /n=(\d+)\)/g;
