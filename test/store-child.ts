// A second process using the same image store, for the store's cross-process tests:
//   resolve DATA NAME            resolve the image, print "unpacked <n>" (layers this process unpacked itself)
//   hold DATA NAME               acquire the image, print "held", and keep it until killed
import { ImageStore } from '../images/store.js';

const [verb, dataDir, name] = process.argv.slice(2);
const store = ImageStore.open(dataDir!);
if (verb === 'resolve') {
  await store.resolve(name!);
  process.stdout.write(`unpacked ${store.layersUnpackedHere}\n`);
} else if (verb === 'hold') {
  await store.acquire(name!);
  process.stdout.write('held\n');
  setInterval(() => {}, 1000);
}
