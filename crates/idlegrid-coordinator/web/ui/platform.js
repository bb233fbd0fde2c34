// What this browser is, from its user agent: its system, and a name for it people recognise
// ("Chrome on Android") — for a device's name and for a dashboard session's.

/** Operating systems as the user agent names them: [pattern, name for people, name for the
 * scheduler]. The first that matches wins (Android's says Linux too). */
const SYSTEMS = [
  [/Android/, 'Android', 'android'], [/iPhone|iPad/, 'iOS', 'ios'], [/Windows/, 'Windows', 'windows'],
  [/Mac OS X/, 'macOS', 'macos'], [/CrOS/, 'ChromeOS', 'linux'], [/Linux/, 'Linux', 'linux'],
];

/** This browser's system: [pattern, name for people, name for the scheduler]. */
export const system = SYSTEMS.find(([pattern]) => pattern.test(navigator.userAgent)) || [null, 'the web', 'unknown'];

/** "Chrome on Android". */
export function browserName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox'
    : /Chrome\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  return `${browser} on ${system[1]}`;
}
